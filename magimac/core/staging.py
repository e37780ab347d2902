"""Staging directories: where a result is written before it is renamed into place, and the
sweep of those left by a process that died.

A staging directory is named ``<prefix><pid>-<random>`` (``tempfile.mkdtemp`` adds the random
part) beside its destination, so the process that owns it can be told from its name.  Ctrl-C
or an error lets the owner remove it; SIGKILL, a crash or a power cut does not, and these can
be many GB (a half-written conversion, reference log-probabilities).  `sweep_stale` removes
those whose owner is gone, and only those: never one of a live run.

What this adds to `tempfile`: the owner in the name, the liveness check (`psutil`), and one
line for people when a directory cannot be written (`WriteError`: read-only disk, a file where
a folder should be, no permission), naming the path and what to do.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import tempfile
from pathlib import Path

from magimac.core.errors import MagimacError

# a pid reused by a process started this long after the directory's last change is not its
# owner; the margin covers psutil's create-time rounding (boot time has whole seconds)
REUSED_PID_MARGIN_S = 5.0


# what `tempfile.mkdtemp` appends to the prefix: 8 of its lower-case letters, digits and "_"
_RANDOM = r"[a-z0-9_]{8}"


class WriteError(MagimacError, OSError):
    """A file or directory magimac must write cannot be; one line naming the path."""


def why_unwritable(path: Path, e: OSError) -> str:
    """Why ``path`` cannot be written, from ``e`` and the file system: the file that stands
    where a folder should be, a read-only disk, a missing permission, a full disk."""
    p = Path(path).expanduser().absolute()
    existing = p
    for anc in reversed([p, *p.parents]):  # from the root down
        if not anc.exists():
            break
        if not anc.is_dir() and anc != p:
            return f"{anc} is a file, not a folder"
        existing = anc
    if e.errno in (errno.ENOTDIR, errno.EEXIST) and p.exists() and not p.is_dir():
        return f"{p} is a file, not a folder"
    if e.errno == errno.EROFS:
        return f"{existing} is on a read-only file system"
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"{existing} is not writable (permission denied)"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk holding {existing} is full"
    if e.errno == errno.ENOENT:
        return f"{existing} cannot hold new folders"
    return e.strerror or type(e).__name__


def write_error(path: Path, e: OSError, hint: str) -> WriteError:
    """The `WriteError` for ``e`` raised while writing ``path``: ``"<path>: cannot write
    there: <why>; <hint>"``."""
    return WriteError(f"{path}: cannot write there: {why_unwritable(path, e)}; {hint}")


def make_dirs(directory: Path, hint: str) -> list[Path]:
    """Create ``directory`` and its missing parents; returns those created, outermost first
    (for `remove_made`).

    Raises:
        WriteError: it cannot be created (message names the path, why, and ``hint``);
            nothing is left behind.
    """
    d = Path(directory).expanduser().absolute()
    missing = [a for a in reversed([d, *d.parents]) if not a.exists()]
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        remove_made(missing)
        raise write_error(d, e, hint) from None
    return missing


def remove_made(dirs: list[Path]) -> None:
    """Remove the directories `make_dirs` created (innermost first), those still empty only."""
    for d in reversed(dirs):
        try:
            d.rmdir()
        except OSError:
            pass


def check_writable(directory: Path, hint: str) -> None:
    """Make sure files can be created in ``directory`` (creating it when missing): a staging
    directory is made there and removed again.

    Raises:
        WriteError: not writable (message names the path, why, and ``hint``).
    """
    made = make_dirs(directory, hint)
    try:
        Path(tempfile.mkdtemp(dir=directory, prefix=".magimac-probe-")).rmdir()
    except OSError as e:
        remove_made(made)
        raise write_error(directory, e, hint) from None


def make(parent: Path, prefix: str, hint: str = "choose another place") -> Path:
    """Create an empty staging directory ``parent/<prefix><this pid>-<random>``; mode 0700.

    Raises:
        WriteError: ``parent`` is not writable (one line with ``hint``).
    """
    try:
        return Path(tempfile.mkdtemp(dir=parent, prefix=f"{prefix}{os.getpid()}-"))
    except OSError as e:
        raise write_error(parent, e, hint) from None


def owner_alive(path: Path, prefix: str) -> bool:
    """Whether the process named in staging directory ``path`` (made by `make` with ``prefix``)
    may still be writing it.

    True when the name is not one `make` gives (made some other way: not ours to judge), when the pid
    is running and started before the directory last changed, or when that cannot be read.
    """
    m = re.fullmatch(re.escape(prefix) + r"(\d+)-" + _RANDOM, path.name)
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


def partial_prefix(name: str = "*") -> str:
    """The prefix of a conversion's staging directory beside output ``name`` (``.NAME.partial-``;
    the default ``*``: of any output, for `find_stale`)."""
    return f".{name}.partial-"


def find_stale(parent: Path, prefix: str) -> list[Path]:
    """The staging directories ``parent/<prefix>*`` whose owner is gone (`owner_alive`).  A
    ``*`` in ``prefix`` stands for any name (`partial_prefix` ``()``).  A missing ``parent`` has
    none.  Only names `make` gives (``<prefix><pid>-<8 random characters>``) are candidates,
    and never a symlink: a folder a person named otherwise is never one."""
    pattern = re.escape(prefix).replace(r"\*", ".+")
    try:
        candidates = sorted(parent.glob(glob.escape(prefix).replace("[*]", "*") + "*"))
    except OSError:
        return []
    stale = []
    for p in candidates:
        m = re.fullmatch(f"({pattern})\\d+-{_RANDOM}", p.name)
        if m and p.is_dir() and not p.is_symlink() and not owner_alive(p, m.group(1)):
            stale.append(p)
    return stale


def sweep_stale(parent: Path, prefix: str) -> list[Path]:
    """Remove `find_stale` ``(parent, prefix)``; returns those removed."""
    removed = find_stale(parent, prefix)
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed


def tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (those that can be read)."""
    total = 0
    for f in path.rglob("*"):
        try:
            total += f.lstat().st_size if f.is_file() else 0
        except OSError:
            pass
    return total


PLACES_FILE = "output-places.txt"
"""In the data directory: the folders `magimac quantize` wrote into, one a line, newest first,
so `magimac doctor` can look there for partial outputs left by killed runs."""
MAX_PLACES = 20


def remember_place(folder: Path) -> None:
    """Note ``folder`` (absolute) first in `PLACES_FILE`, keeping `MAX_PLACES`; never raises
    (a place not noted is only a folder doctor does not look in)."""
    from magimac.core import paths

    record = paths.data_dir() / PLACES_FILE
    folder = str(Path(folder).expanduser().absolute())
    places = [folder, *(p for p in remembered_places() if str(p) != folder)][:MAX_PLACES]
    tmp = record.with_name(f".{PLACES_FILE}.{os.getpid()}.tmp")
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("".join(f"{p}\n" for p in places), encoding="utf-8")
        os.replace(tmp, record)
    except OSError:
        tmp.unlink(missing_ok=True)


def remembered_places() -> list[Path]:
    """The folders `remember_place` noted, newest first (none when the file cannot be read)."""
    from magimac.core import paths

    try:
        text = (paths.data_dir() / PLACES_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeError):
        return []
    return [Path(line) for line in text.splitlines()[:MAX_PLACES] if line.strip()]
