"""What this node build reports to the CP with every ``ReportPolicyStatus``: software, contract version and the
capabilities it enforces. The CP enables no flag or rollout a node has not reported (``docs/rollout.md``)."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

CONTRACT_VERSION = "v1.1"
"""The contract release this node was built with: ``v1`` is the proto package version, ``.1`` counts additive
releases (``v1.0`` nodes did not report one). The CP supports nodes one release behind."""
FEATURES = ("feature_flags", "rollout_caps")
"""Capability names, as ``cp_server.rollout.capabilities`` checks them."""


@functools.cache
def software_version() -> str:
    try:
        return version("xporty-cross-wl")
    except PackageNotFoundError:
        return "unknown"
