"""A process's memory, state and CPU time from /proc (Linux), without psutil (not a dependency)."""

from __future__ import annotations

import os
from pathlib import Path


def _status_bytes(field: str, pid: int | None) -> int:
    for line in Path(f"/proc/{pid or os.getpid()}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def rss(pid: int | None = None) -> int:
    """Resident set size in bytes."""
    return _status_bytes("VmRSS", pid)


def vm_peak(pid: int) -> int:
    """The most address space the process ever held, in bytes: what RLIMIT_AS caps."""
    return _status_bytes("VmPeak", pid)


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) "


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie its parent has not reaped yet."""
    try:
        return _stat(pid)[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def cpu_s(pid: int) -> float:
    """User + system CPU seconds so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
