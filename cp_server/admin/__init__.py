"""AdminService: the operators' API to registry, policies, node status, enrollment tokens and audit."""
