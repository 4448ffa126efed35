"""Policy distribution: per-WL views, the change hub, PolicyService."""
