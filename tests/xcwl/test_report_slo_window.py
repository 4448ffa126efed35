"""``xcwl report slo --window`` parsing."""

from __future__ import annotations

import pytest

from xcwl.errors import CliError
from xcwl.report_cmd import window_seconds


@pytest.mark.parametrize(("text", "seconds"), [("3600", 3600), ("90s", 90), ("15m", 900), ("1h", 3600),
                                               ("7d", 604800), ("1.5h", 5400)])
def test_window_units(text: str, seconds: int) -> None:
    assert window_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "0", "-1h", "31d", "1w", "abc"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(CliError):
        window_seconds(text)
