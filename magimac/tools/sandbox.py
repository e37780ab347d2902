"""The python tool: run a model's code in a separate process, inside the system's own sandbox.

magimac hands the isolation to the operating system's trusted mechanism and refuses to run the
code where there is none (`isolation` says which, for the permission prompt and `magimac tools`):

- Linux: bubblewrap (`magimac.tools.bwrap`): own user, pid and network namespaces, no
  capabilities, only Python's installation and the system's libraries visible (read-only), the
  run's folder and ``/tmp`` in memory, gone with the run.
- macOS: Seatbelt (`magimac.tools.seatbelt`): a deny-by-default ``sandbox-exec`` profile.
- Elsewhere, or where the mechanism is missing or cannot start: the code does not run, and the
  result says why and what to install.

On top of the box, always: Python's isolated mode (``-I``), an environment of a few fixed
variables, a time limit (wall clock, and ``RLIMIT_CPU``), an output cap, a memory limit
(``RLIMIT_AS``, and the process tree's resident memory polled with psutil, since macOS does not
enforce ``RLIMIT_AS``), ``RLIMIT_NPROC`` (the user's process count now +
`SandboxLimits.processes`, so a fork bomb stops there), ``RLIMIT_FSIZE``, no core files. Only
files attached to the conversation are copied in. When magimac runs as root, the code runs as
``nobody`` (uid 65534) and, where root's Python is out of its reach, on the system's python3.

Defaults (settable, `SandboxLimits`): 10 s, 1 GiB, 64 KiB of output, 16 more processes, 64 MiB
in its folder and 64 MiB in ``/tmp``.
"""

from __future__ import annotations

import contextlib
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

from magimac.tools import bwrap, seatbelt

NOBODY = 65534  # the conventional uid/gid of `nobody` on Linux
FOLDER_PREFIX = "magimac-python-"
"""macOS: the run's folder is ``TMPDIR/magimac-python-PID-XXXX`` (PID: magimac's process)."""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one run: ``time_s`` seconds (wall clock), ``memory_bytes`` bytes of address
    space and of resident memory, ``output_bytes`` bytes of stdout kept, ``processes`` more
    processes than the user runs now, ``disk_bytes`` bytes the code may write to its folder
    (and as much to ``/tmp``) besides the attached files."""

    time_s: float = 10.0
    memory_bytes: int = 1 << 30
    output_bytes: int = 64 * 1024
    processes: int = 16
    disk_bytes: int = 64 << 20


@dataclass(frozen=True)
class RunResult:
    """``output``: stdout, trailing whitespace stripped (cut at the cap, with a note); None when
    the run failed, except that a run stopped at its time or memory limit, or cancelled, keeps
    what it printed until then; ``error``: one line when it failed; ``seconds``: wall time."""

    output: str | None
    error: str | None
    seconds: float


@dataclass(frozen=True)
class Isolation:
    """What this machine enforces around the code: ``enforced`` (a box exists; when False the
    python tool refuses to run), ``network`` (no network), ``files`` (the person's files out of
    reach), ``processes`` (its own process tree: nothing outside can be signalled, nothing
    outlives the run), ``how`` (a phrase for the permission prompt and `magimac tools`)."""

    enforced: bool
    network: bool
    files: bool
    processes: bool
    how: str


@functools.cache
def isolation() -> Isolation:
    """What the sandbox enforces here (checked once: on Linux by starting bubblewrap)."""
    if seatbelt.available():
        return Isolation(True, True, True, False, "Seatbelt (sandbox-exec): no network, no files but Python's and "
                         "its own folder, signals only to its own processes")
    if sys.platform.startswith("linux"):
        why = bwrap.works(interpreter(), os.getuid() == 0)
        if why is None:
            return Isolation(True, True, True, True, "bubblewrap: no network, nothing visible but Python and its "
                             "own folder, its own process tree; your files, sockets and processes out of reach")
        return Isolation(False, False, False, False, f"refused, no sandbox: {why}")
    return Isolation(False, False, False, False, f"refused, no sandbox for {sys.platform}")


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
                           (resource.RLIMIT_FSIZE, limits.disk_bytes), (resource.RLIMIT_NPROC, nproc)):
            resource.setrlimit(res, (value, value))
        if sys.platform != "darwin":  # macOS refuses a lowered RLIMIT_AS; psutil polls instead
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        if os.getuid() == 0:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    return setup


def _env(home: str, tmp: str) -> dict[str, str]:
    return {"HOME": home, "TMPDIR": tmp, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1"}


def run_python(code: str, limits: SandboxLimits = SandboxLimits(), files: tuple[str, ...] = (),
               cancel: threading.Event | None = None) -> RunResult:
    """Run ``code`` in the box (module doc) and return its result.

    Args:
        code: Python 3 source.
        limits: the limits. files: paths copied into the folder (the conversation's attachments).
        cancel: set to stop the run at once (error ``"cancelled"``).

    Errors of the code are results, not exceptions: ``"ZeroDivisionError: division by zero"``,
    ``"time limit of 10 s reached"``, ``"memory limit of 1.0 GiB reached"``; so is a refusal
    where there is no sandbox (``"refused, no sandbox: ..."``, nothing run).
    """
    iso = isolation()
    if not iso.enforced:
        return RunResult(None, iso.how, 0.0)
    start = time.monotonic()
    setup = _limit(limits, _user_processes() + limits.processes)
    if seatbelt.available():
        return _run_seatbelt(code, limits, files, cancel, setup, start)
    with contextlib.ExitStack() as stack:
        script = stack.enter_context(tempfile.TemporaryFile())
        script.write(code.encode("utf-8"))
        entries = [(script, "main.py")]
        for f in files:
            entries.append((stack.enter_context(open(f, "rb")), Path(f).name))
        for fh, _ in entries:
            fh.seek(0)
        fds = [(fh.fileno(), name) for fh, name in entries]
        attached = sum(os.fstat(fd).st_size for fd, _ in fds)
        argv = bwrap.command([interpreter(), "-I", f"{bwrap.BOX}/main.py"], limits.disk_bytes + attached + (1 << 20),
                             limits.disk_bytes, fds)
        proc = subprocess.Popen(argv, cwd="/", env=_env(bwrap.BOX, "/tmp"), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=[fd for fd, _ in fds],
                                preexec_fn=setup)
        return _watch(proc, limits, cancel, start)


def _run_seatbelt(code: str, limits: SandboxLimits, files: tuple[str, ...], cancel, setup, start: float) -> RunResult:
    """macOS: the run's folder on disk (swept with the run, or later if magimac was killed)."""
    sweep_folders()
    folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))
    try:
        script = folder / "main.py"
        script.write_text(code, encoding="utf-8")
        for f in files:
            shutil.copy(f, folder / Path(f).name)
        argv = seatbelt.command([interpreter(), "-I", str(script)], folder)
        proc = subprocess.Popen(argv, cwd=folder, env=_env(str(folder), str(folder)), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=setup)
        return _watch(proc, limits, cancel, start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sweep_folders(tmp: Path | None = None) -> list[Path]:
    """Delete run folders (``FOLDER_PREFIX``PID-...) of magimac processes that are gone; returns them."""
    import psutil

    gone = []
    for d in Path(tmp or tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*-*"):
        pid = d.name[len(FOLDER_PREFIX):].split("-")[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)) and d.is_dir() and d.owner() == Path.home().owner():
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d)
    return gone


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
    if why is not None:  # what it printed before the limit still reaches the model
        return RunResult(stdout.rstrip() or None, why, seconds)
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
