"""Is a local process still the one we started? (pid liveness that survives pid reuse on Linux)."""

from __future__ import annotations

import os
from pathlib import Path


def pid_running(pid: int) -> bool:
    """True if a process with this pid exists on this host (whoever owns it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _start_time(pid: int) -> float | None:
    """Epoch seconds at which `pid` started, from /proc (None where /proc is unavailable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, StopIteration, ValueError):
        return None
    # Field 22 (starttime, clock ticks since boot) counted after the parenthesised command name.
    fields = stat.rsplit(")", 1)[1].split()
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def same_process_running(pid: int, seen_at: float) -> bool:
    """True if `pid` runs and is the process seen at epoch time `seen_at`, not a later one that reused the pid."""
    if not pid_running(pid):
        return False
    started = _start_time(pid)
    # btime is rounded to the second and starttime to a clock tick: allow a little slack.
    return started is None or started <= seen_at + 2.0
