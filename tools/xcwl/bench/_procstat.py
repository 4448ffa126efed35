"""CPU time and resident memory of a process, read from ``/proc/<pid>/stat``, ``/proc/<pid>/status`` and
``/proc/<pid>/smaps_rollup`` (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3 of the man page
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime (fields 14 and 15)


def rss_mb(pid: int) -> float:
    """Resident set size in MiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size in MiB (``Pss`` of ``/proc/<pid>/smaps_rollup``): resident memory with each shared
    page divided among the processes mapping it, so N nodes' shared library pages count once in total; 0 when the
    kernel does not provide it."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class CpuWindow:
    """CPU % of one core of a set of processes over a window: ``start()``, wait, ``stop()``."""

    pids: dict[str, int]
    _t0: float = 0.0
    _cpu0: dict[str, float] | None = None

    def start(self, now: float) -> None:
        self._t0 = now
        self._cpu0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self, now: float) -> dict[str, float]:
        """Percent of one core per process name over the window."""
        assert self._cpu0 is not None, "start() first"
        span = max(now - self._t0, 1e-9)
        return {name: 100.0 * (cpu_seconds(pid) - self._cpu0[name]) / span for name, pid in self.pids.items()}
