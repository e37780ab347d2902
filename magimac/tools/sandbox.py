"""The ``python`` tool: run a model's code in a separate, limited process.

What is enforced (`isolation` says which of it holds on this machine, for the permission prompt):

- Always: a separate process in its own session (killed as a whole group), a fresh temporary
  folder as its working directory, ``HOME`` and ``TMPDIR`` pointing there, an environment of a
  few fixed variables, Python's isolated mode (``-I``: no ``PYTHON*`` variables, no user site),
  a time limit (wall clock; also ``RLIMIT_CPU``), an output cap (the rest is cut, the process
  stopped), a memory limit (``RLIMIT_AS``, and the process tree's resident memory polled with
  psutil, since macOS does not enforce ``RLIMIT_AS``), ``RLIMIT_NPROC`` (the user's process
  count now + `SandboxLimits.processes`, so a fork bomb stops there), no core files, and the
  folder deleted afterwards.  Only files attached to the conversation are copied in.
- Linux, when ``unshare -rnm`` works (user + network + mount namespace): no network (only a
  loopback that is down) and empty tmpfs over the home folder and the folder magimac started in,
  so the person's files there cannot be read (files elsewhere, e.g. /srv, stay readable as far
  as their modes allow).  When magimac runs as root, the code runs as ``nobody``
  (``RLIMIT_NPROC`` does not bind root, and files of mode 0600/0700 are out of reach).
- macOS: ``sandbox-exec`` with a profile that denies network and file reads outside the
  system, Python's installation and the temporary folder, and writes outside that folder.
- Elsewhere (no ``unshare``/``sandbox-exec``): no network isolation; `isolation` says so.

Defaults (settable, `SandboxLimits`): 10 s, 1 GiB, 64 KiB of output, 16 more processes.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path


NOBODY = 65534  # the conventional uid/gid of `nobody` on Linux
MAC_PROFILE = """(version 1)
(deny default)
(allow process-exec process-fork signal sysctl-read mach-lookup ipc-posix-shm iokit-open)
(allow file-read-metadata)
(allow file-read* (subpath "/System") (subpath "/usr") (subpath "/bin") (subpath "/Library")
  (subpath "/private/var/db") (subpath "/private/etc") (subpath "/dev") (subpath "/opt") (subpath "{prefix}") (subpath "{base}")
  (subpath "{folder}"))
(allow file-write* (subpath "{folder}") (literal "/dev/null"))
(deny network*)
"""
"""The macOS `sandbox-exec` profile (SBPL, Apple's sandbox profile language)."""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one run: ``time_s`` seconds (wall clock), ``memory_bytes`` bytes of address
    space and of resident memory, ``output_bytes`` bytes of stdout kept, ``processes`` more
    processes than the user runs now."""

    time_s: float = 10.0
    memory_bytes: int = 1 << 30
    output_bytes: int = 64 * 1024
    processes: int = 16


@dataclass(frozen=True)
class RunResult:
    """``output``: stdout, trailing whitespace stripped (cut at the cap, with a note), or None
    when the run failed; ``error``: one line when it failed; ``seconds``: wall time."""

    output: str | None
    error: str | None
    seconds: float


@dataclass(frozen=True)
class Isolation:
    """What this machine enforces beyond the limits: ``network`` (no network), ``files`` (the
    person's files out of reach), ``how`` (a phrase for the permission prompt)."""

    network: bool
    files: bool
    how: str


@functools.cache
def isolation() -> Isolation:
    """What the sandbox can enforce here (checked once, by running ``unshare -rn true``)."""
    if sys.platform == "darwin" and shutil.which("sandbox-exec"):
        return Isolation(True, True, "sandbox-exec: no network, no files outside its folder")
    if sys.platform.startswith("linux") and shutil.which("unshare"):
        try:
            ok = subprocess.run(["unshare", "-rnm", "true"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return Isolation(True, True, "network namespace: no network; home and starting folders hidden")
    return Isolation(False, os.getuid() == 0, "no network isolation on this system: the code could go online")


def _world_runnable(path: Path) -> bool:
    """Whether any user may run ``path`` (every folder above it and the file are o+x)."""
    path = path.resolve()
    return all(p.stat().st_mode & 0o001 for p in (path, *path.parents))


@functools.cache
def interpreter() -> str:
    """The Python the code runs on: this one (``sys.executable``), except when magimac runs as
    root and ``nobody`` may not run it (a Python under /root): then the system's python3."""
    if os.getuid() != 0 or _world_runnable(Path(sys.executable)):
        return sys.executable
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(cand).exists() and _world_runnable(Path(cand)):
            return cand
    return sys.executable


def _command(folder: Path, script: Path) -> list[str]:
    py = [interpreter(), "-I", str(script)]
    iso = isolation()
    if sys.platform == "darwin" and iso.network:
        profile = MAC_PROFILE.format(prefix=sys.prefix, base=sys.base_prefix, folder=folder.resolve())
        return ["sandbox-exec", "-p", profile, *py]
    if iso.network:
        hide = " && ".join(f"{{ mount -t tmpfs -o size=1m none '{d}' 2>/dev/null || "
                           f"{{ echo 'the sandbox could not hide {d}: nothing was run' >&2; exit 1; }}; }}"
                           for d in _hidden_dirs())
        inner = f"{hide} && exec \"$@\"" if hide else 'exec "$@"'
        return ["unshare", "-rnm", "/bin/sh", "-c", inner, "sh", *py]
    return py


def _hidden_dirs() -> list[str]:
    """Folders covered by an empty tmpfs in the mount namespace: the home folder and the folder
    magimac was started in (the person's files), each unless the Python that runs lives there, or
    (as root) unless `nobody` cannot reach it anyway."""
    py = [Path(interpreter()).resolve()]
    if interpreter() == sys.executable:
        py += [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()]
    out: list[Path] = []
    for d in (Path.home(), Path.cwd()):
        d = d.resolve()
        if os.getuid() == 0 and not _world_runnable(d):
            continue  # the code runs as `nobody`, which cannot reach it: hidden already (and unmountable)
        if (d.is_dir() and d != Path("/") and "'" not in str(d) and not any(p.is_relative_to(d) for p in py)
                and not any(d.is_relative_to(o) for o in out)):
            out.append(d)
    return [str(d) for d in out]


def _user_processes() -> int:
    import psutil

    uid = NOBODY if os.getuid() == 0 else os.getuid()
    n = 0
    for p in psutil.process_iter(["uids"]):
        uids = p.info.get("uids")
        n += bool(uids and uids.real == uid)
    return n


def _limit(limits: SandboxLimits, nproc: int):
    """The child's set-up before exec: own session, rlimits, and `nobody` when root."""
    import resource

    def setup() -> None:
        os.setsid()
        cpu = int(limits.time_s) + 1
        for res, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_CORE, 0),
                           (resource.RLIMIT_FSIZE, 64 << 20), (resource.RLIMIT_NPROC, nproc)):
            resource.setrlimit(res, (value, value))
        if sys.platform != "darwin":  # macOS refuses a lowered RLIMIT_AS; psutil polls instead
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        if os.getuid() == 0:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    return setup


def _reader(stream, cap: int, sink: list[bytes], over: threading.Event) -> None:
    """Read ``stream`` to its end, keeping at most ``cap`` bytes in ``sink``; sets ``over``
    when more came."""
    kept = total = 0
    while chunk := stream.read1(65536):
        total += len(chunk)
        if kept < cap:
            sink.append(chunk[: cap - kept])
            kept += len(sink[-1])
        if total > cap:
            over.set()
    stream.close()


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        p = psutil.Process(pid)
        return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)])
    except psutil.Error:
        return 0


def run_python(code: str, limits: SandboxLimits = SandboxLimits(), files: tuple[str, ...] = (),
               cancel: threading.Event | None = None) -> RunResult:
    """Run ``code`` under the sandbox (module doc) and return its result.

    Args:
        code: Python 3 source.
        limits: the limits. files: paths copied into the folder (the conversation's attachments).
        cancel: set to stop the run at once (error ``"cancelled"``).

    Errors of the code are results, not exceptions: ``"ZeroDivisionError: division by zero"``,
    ``"time limit of 10 s reached"``, ``"memory limit of 1.0 GiB reached"``.
    """
    folder = Path(tempfile.mkdtemp(prefix="magimac-python-"))
    start = time.monotonic()
    try:
        script = folder / "main.py"
        script.write_text(code, encoding="utf-8")
        for f in files:
            shutil.copy(f, folder / Path(f).name)
        if os.getuid() == 0:
            for p in (folder, *folder.iterdir()):
                os.chown(p, NOBODY, NOBODY)
        env = {"HOME": str(folder), "TMPDIR": str(folder), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
               "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.Popen(_command(folder, script), cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=_limit(limits, _user_processes() + limits.processes))
        return _watch(proc, limits, cancel, start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _watch(proc: subprocess.Popen, limits: SandboxLimits, cancel, start: float) -> RunResult:
    """Wait for ``proc`` within the limits; kill its whole group on a limit or a cancel."""
    out: list[bytes] = []
    err: list[bytes] = []
    over = threading.Event()
    readers = [threading.Thread(target=_reader, args=(proc.stdout, limits.output_bytes, out, over), daemon=True),
               threading.Thread(target=_reader, args=(proc.stderr, 16384, err, threading.Event()), daemon=True)]
    for t in readers:
        t.start()
    why = None
    while proc.poll() is None:
        if time.monotonic() - start > limits.time_s:
            why = f"time limit of {limits.time_s:g} s reached"
        elif cancel is not None and cancel.is_set():
            why = "cancelled"
        elif _tree_rss(proc.pid) > limits.memory_bytes:
            why = f"memory limit of {_size(limits.memory_bytes)} reached"
        elif over.is_set():
            why = "output cap"
        if why:
            _kill(proc)
            break
        time.sleep(0.02)
    _kill(proc)  # what it left behind in its group (forked children)
    for t in readers:
        t.join(timeout=2)
    seconds = round(time.monotonic() - start, 2)
    stdout = b"".join(out).decode("utf-8", errors="replace")
    if why == "output cap" or (why is None and over.is_set()):
        note = f"\n[output cut at {_size(limits.output_bytes)}]"
        return RunResult(stdout.rstrip() + note, None, seconds)
    if why is not None:
        return RunResult(None, why, seconds)
    if proc.returncode != 0:
        return RunResult(None, _failure(b"".join(err).decode("utf-8", errors="replace"), proc.returncode,
                                        limits), seconds)
    return RunResult(stdout.rstrip(), None, seconds)


def _failure(stderr: str, code: int, limits: SandboxLimits) -> str:
    """One line for a failed run: the exception's last line, or how it ended."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if last.startswith("MemoryError"):
        return f"memory limit of {_size(limits.memory_bytes)} reached (MemoryError)"
    if last:
        return last[:300]
    if code < 0:
        return f"stopped by signal {signal.Signals(-code).name}"
    return f"exit status {code}"


def _size(n: int) -> str:
    """A limit in binary units, as set: ``64 KiB``, ``1 GiB``."""
    for unit, k in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << k:
            return f"{n / (1 << k):g} {unit}"
    return f"{n} bytes"


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()
