"""``xcwl``: the XporY Cross-WL command line (servers, PKI, policies, reports, demo, benchmarks)."""
