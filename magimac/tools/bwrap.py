"""The python tool's box on Linux: bubblewrap (``bwrap``), Flatpak's sandbox.

magimac adds no isolation of its own here: it only chooses bubblewrap's options (bubblewrap
0.8 or newer, Debian/Ubuntu package ``bubblewrap``). What they give the code:

- ``--unshare-all`` and ``--disable-userns``: its own user, pid, network, IPC, UTS and cgroup
  namespaces, and no further user namespace inside (so it can never gain capabilities). The pid
  namespace means the code sees and signals only its own processes, and every process it
  starts (``fork(); setsid(); fork()`` included) dies with the run.
- No capabilities, ``no_new_privs`` (bubblewrap sets it): the mounts below cannot be undone,
  remounted or added to from inside.
- A new root holding only: ``/usr`` and the ``/bin``, ``/lib*`` links (the system's programs and
  libraries), the dynamic linker's cache, Python's installation (``sys.prefix`` and
  ``sys.base_prefix``, wherever it lives, home folder included), each read-only; a fresh
  ``/proc`` for its pid namespace, a minimal ``/dev``; and two size-capped tmpfs: the run's
  folder ``/box`` (its working and home folder, with the script and the attached files copied
  in from file descriptors) and a private ``/tmp``. Nothing of the person's home, ``/run``
  (D-Bus, ``SSH_AUTH_SOCK`` and other agent sockets), ``/etc``, ``/srv`` or ``/var`` exists
  inside, and nothing the code writes outlives the run: the folders are memory, gone when the
  namespace ends, even when magimac is killed (``--die-with-parent``).
- No network: only a loopback that is down; abstract Unix sockets belong to the network
  namespace, so the person's are out of reach too.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

BOX = "/box"
"""The run's folder inside the box (working directory and ``HOME``)."""
INSTALL_HINT = "install bubblewrap (`sudo apt install bubblewrap`, `sudo dnf install bubblewrap`)"
_ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")
_TOP = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def executable() -> str | None:
    """The ``bwrap`` program, or None when it is not installed."""
    return shutil.which("bwrap")


def _system() -> list[str]:
    """Read-only binds of the system's programs and libraries (merged-/usr links kept as links)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in _TOP:
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += ["--ro-bind", top, top]
    for etc in _ETC:
        args += ["--ro-bind-try", etc, etc]
    return args


def python_dirs(interpreter: str) -> list[str]:
    """The folders of Python's installation the code needs, outside ``/usr``: the interpreter's
    own folder's parent and, when ``interpreter`` is this Python, ``sys.prefix`` (a venv) and
    ``sys.base_prefix`` (where the standard library lives)."""
    dirs = [Path(interpreter).resolve().parent.parent]
    if Path(interpreter).resolve() == Path(sys.executable).resolve():
        dirs += [Path(sys.prefix), Path(sys.base_prefix)]
    out: list[str] = []
    for d in dirs:
        d = d.resolve()
        if not d.is_relative_to("/usr") and str(d) not in out:
            out.append(str(d))
    return out


def command(python: list[str], box_bytes: int, tmp_bytes: int, files: list[tuple[int, str]]) -> list[str]:
    """The ``bwrap`` argument list that runs ``python`` (an argv) in the box.

    Args:
        python: the interpreter's argv; its script path must lie under `BOX`.
        box_bytes, tmp_bytes: sizes in bytes of the ``/box`` and ``/tmp`` tmpfs.
        files: ``(fd, name)`` pairs: each open file descriptor (at offset 0) is copied into
            ``/box/name`` (the caller passes the descriptors to the child with ``pass_fds``).
    """
    args = [executable() or "bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--hostname", "box", "--cap-drop", "ALL", *_system()]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    for d in python_dirs(python[0]):  # after /tmp: a Python living under /tmp stays visible
        args += ["--ro-bind", d, d]
    args += ["--size", str(box_bytes), "--tmpfs", BOX]
    for fd, name in files:
        args += ["--perms", "0644", "--file", str(fd), f"{BOX}/{name}"]
    return [*args, "--chdir", BOX, "--", *python]


@functools.cache
def works(interpreter: str, as_nobody: bool) -> str | None:
    """None when bubblewrap runs ``interpreter`` in the box here, else a one-line reason (checked
    once: some systems forbid unprivileged user namespaces, e.g. a sysctl or AppArmor)."""
    if executable() is None:
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    argv = command([interpreter, "-I", "-c", "pass"], 1 << 20, 1 << 20, [])

    def drop() -> None:
        if as_nobody:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)

    try:
        r = subprocess.run(argv, capture_output=True, timeout=20, preexec_fn=drop, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bubblewrap could not start: {e}"
    if r.returncode != 0:
        why = (r.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        return f"bubblewrap cannot make a box here ({why[:200]}); allow unprivileged user namespaces or {INSTALL_HINT}"
    return None
