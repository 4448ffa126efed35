"""``xcwl bench …``: benchmarks, one module per area, each with ``add_arguments(parser)`` and ``async run(args)``."""
