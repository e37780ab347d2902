"""The python tool's box on macOS: Seatbelt, through ``/usr/bin/sandbox-exec`` (built in).

The profile (SBPL, Apple's sandbox profile language) denies by default, like Chromium's and
OpenAI Codex CLI's base policies, and allows only what Python needs. Each allowance and why:

- ``process-exec``, ``process-fork``: the code may start programs and subprocesses; they
  inherit this profile.
- ``signal (target same-sandbox)``, ``process-info* (target same-sandbox)``: it can signal and
  inspect only processes of this box, never magimac or the person's other processes.
- ``sysctl-read`` of the ``hw.`` and a few ``kern.`` names: CPU count, page size and OS
  version, read at start by Python and NumPy.
- ``mach-lookup`` of ``com.apple.system.opendirectoryd.libinfo`` only: user and group look-ups
  (``getpwuid``). No other Mach service: not the pasteboard, not the window server, not
  Keychain, not Apple Events.
- ``ipc-posix-sem``: ``multiprocessing``'s locks.
- ``file-read-metadata``: ``stat`` of any path (Python walks path components at start); it
  shows that a path exists and its size and dates, never its contents or a folder's listing.
- ``file-read*`` of the system (``/System``, ``/usr``, ``/bin``, ``/Library``, ``/private/etc``,
  ``/dev``), Python's installation and the run's folder; ``file-write*`` of the run's folder
  and ``/dev/null`` only.
- No network of any kind (``network*`` denied: IP and Unix-domain sockets alike).

What this does not give, unlike the Linux box: no separate process tree (magimac kills the
run's process group, but a child that called ``setsid`` is found by its parentage only while the
run lasts), and the run's folder is on disk (swept when its magimac process is gone).
"""

from __future__ import annotations

import sys
from pathlib import Path

SANDBOX_EXEC = "/usr/bin/sandbox-exec"
PROFILE = """(version 1)
(deny default)
(allow process-exec process-fork)
(allow signal (target same-sandbox))
(allow process-info* (target same-sandbox))
(allow sysctl-read (sysctl-name-prefix "hw.") (sysctl-name "kern.osrelease") (sysctl-name "kern.ostype")
  (sysctl-name "kern.osversion") (sysctl-name "kern.osproductversion") (sysctl-name "kern.version")
  (sysctl-name "kern.argmax") (sysctl-name "kern.maxfilesperproc") (sysctl-name "kern.usrstack64"))
(allow mach-lookup (global-name "com.apple.system.opendirectoryd.libinfo"))
(allow ipc-posix-sem)
(allow file-read-metadata)
(allow file-read* (subpath "/System") (subpath "/usr") (subpath "/bin") (subpath "/Library")
  (subpath "/private/etc") (subpath "/dev") (subpath "{prefix}") (subpath "{base}") (subpath "{folder}"))
(allow file-write* (subpath "{folder}") (literal "/dev/null"))
(deny network*)
"""
"""The profile; ``{prefix}``, ``{base}`` and ``{folder}`` are filled with resolved paths."""


def available() -> bool:
    """Whether Seatbelt can be used (macOS with ``sandbox-exec``)."""
    return sys.platform == "darwin" and Path(SANDBOX_EXEC).exists()


def command(python: list[str], folder: Path) -> list[str]:
    """The ``sandbox-exec`` argv that runs ``python`` (an argv) with `PROFILE` for ``folder``."""
    profile = PROFILE.format(prefix=Path(sys.prefix).resolve(), base=Path(sys.base_prefix).resolve(),
                             folder=folder.resolve())
    return [SANDBOX_EXEC, "-p", profile, *python]
