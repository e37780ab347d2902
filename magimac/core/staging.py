"""Staging directories: where a result is written before it is renamed into place, and the
sweep of those left by a process that died.

A staging directory is named ``<prefix><pid>-<random>`` (``tempfile.mkdtemp`` adds the random
part) beside its destination, so the process that owns it can be told from its name.  Ctrl-C
or an error lets the owner remove it; SIGKILL, a crash or a power cut does not, and these can
be many GB (a half-written conversion, reference log-probabilities).  `sweep_stale` removes
those whose owner is gone, and only those: never one of a live run.

What this adds to `tempfile`: the owner in the name, and the liveness check (`psutil`).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
from pathlib import Path

# a pid reused by a process started this long after the directory's last change is not its
# owner; the margin covers psutil's create-time rounding (boot time has whole seconds)
REUSED_PID_MARGIN_S = 5.0


def make(parent: Path, prefix: str) -> Path:
    """Create an empty staging directory ``parent/<prefix><this pid>-<random>``; mode 0700."""
    return Path(tempfile.mkdtemp(dir=parent, prefix=f"{prefix}{os.getpid()}-"))


def owner_alive(path: Path, prefix: str) -> bool:
    """Whether the process named in staging directory ``path`` (made by `make` with ``prefix``)
    may still be writing it.

    True when the name carries no pid (made some other way: not ours to judge), when the pid
    is running and started before the directory last changed, or when that cannot be read.
    """
    m = re.fullmatch(re.escape(prefix) + r"(\d+)-[A-Za-z0-9_]+", path.name)
    if m is None:
        return True
    import psutil

    pid = int(m.group(1))
    if not psutil.pid_exists(pid):
        return False
    try:
        started = psutil.Process(pid).create_time()
        changed = path.stat().st_mtime
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, OSError):
        return True
    return started <= changed + REUSED_PID_MARGIN_S  # else the pid now belongs to a newer process


def sweep_stale(parent: Path, prefix: str) -> list[Path]:
    """Remove the staging directories ``parent/<prefix>*`` whose owner is gone (`owner_alive`);
    returns those removed.  A missing ``parent`` has none."""
    removed = []
    try:
        candidates = sorted(parent.glob(f"{glob.escape(prefix)}*"))
    except OSError:
        return removed
    for p in candidates:
        if p.is_dir() and not p.is_symlink() and not owner_alive(p, prefix):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed
