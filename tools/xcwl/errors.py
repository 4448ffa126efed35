"""The one error type commands raise: printed as a single line on stderr, with an exit code.

Exit codes: 0 success; 1 a check that ran and failed (e.g. ``audit verify``); 2 usage, configuration or a refused
or failed RPC (argparse also exits 2 on bad usage).
"""

from __future__ import annotations

EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2


class CliError(Exception):
    """A failure to report to the user as one line, then exit with ``exit_code``."""

    def __init__(self, message: str, *, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
