"""Peak resident memory of this process, for the benchmarks that run each conversion in a
worker process of its own.

Why not ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` alone: on Linux a child started with
``vfork`` + ``exec`` (what `subprocess` does) inherits, at ``exec``, the high-water mark of the
memory it shared with its parent, so a worker started by a parent that once held 16 GB reports
16 GB whatever it did itself (seen in ``bench_quant_methods``: every tool "peaked" at the
parent's checkpoint-building peak).  ``VmHWM`` in ``/proc/self/status`` is the high-water mark
of this process's own address space, which ``exec`` replaced.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_bytes() -> int:
    """The most resident memory this process has used since it started, in bytes: Linux's
    ``VmHWM`` (kB in ``/proc/self/status``), else ``ru_maxrss`` (bytes on macOS)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024)
