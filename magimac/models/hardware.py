"""Facts about this machine that decide what model fits: chip, memory, GPU wired limit, disk.

On a Mac, MLX runs on the GPU out of unified memory, and macOS lets the GPU *wire* only part
of it: ``sysctl iogpu.wired_limit_mb`` when set, else macOS's default
(`magimac.core.units.default_gpu_limit`: two thirds of RAM up to 36 GiB, three quarters
above).  On Linux MLX runs on its CPU backend (or CUDA), and the limit is the system memory.

Read without MLX (``sysctl``, `psutil`), so planning imports no MLX; what only MLX can tell
(its device, Metal) is `magimac.engine.device`.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from magimac.core.units import default_gpu_limit


@dataclass(frozen=True)
class Hardware:
    """What this machine offers a model.

    Attributes:
        system: ``platform.system()``: ``"Darwin"`` or ``"Linux"``.
        machine: ``platform.machine()``, e.g. ``"arm64"``, ``"x86_64"``.
        chip: CPU or SoC name, e.g. ``"Apple M4 Pro"`` (``""`` when unknown).
        total_memory: system (unified) memory, bytes.
        available_memory: memory free for new allocations now, bytes.
        gpu_limit: bytes the GPU may wire: the ``iogpu.wired_limit_mb`` sysctl when set,
            else macOS's default for ``total_memory`` (a Mac), else the system memory.
        gpu_limit_source: where ``gpu_limit`` came from (``"sysctl"``, ``"macOS default"``,
            ``"system memory"``, ``"assumed"`` for ``--ram``).
        wired_limit_mb: ``sysctl iogpu.wired_limit_mb`` (0: macOS default; None: not a Mac).
        free_disk: free bytes on the file system holding the models directory.
        disk_path: the directory ``free_disk`` was measured for.
    """

    system: str
    machine: str
    chip: str
    total_memory: int
    available_memory: int
    gpu_limit: int
    gpu_limit_source: str
    wired_limit_mb: int | None
    free_disk: int
    disk_path: str

    def to_dict(self) -> dict:
        """A JSON-ready dict of the fields."""
        return asdict(self)


def _sysctl(name: str) -> str | None:
    if sys.platform != "darwin":
        return None
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def wired_limit_mb() -> int | None:
    """``sysctl iogpu.wired_limit_mb`` in MB (0: macOS default); None off macOS or when unreadable."""
    value = _sysctl("iogpu.wired_limit_mb")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def chip_name() -> str:
    """The CPU / SoC name (``machdep.cpu.brand_string`` on macOS, ``/proc/cpuinfo`` on Linux)."""
    name = _sysctl("machdep.cpu.brand_string")
    if name:
        return name
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def memory_bytes() -> int:
    """Installed memory, bytes: ``sysctl hw.memsize`` on macOS, else `psutil`'s total."""
    value = _sysctl("hw.memsize")
    if value and value.isdigit():
        return int(value)
    import psutil

    return int(psutil.virtual_memory().total)


def free_disk_bytes(path: Path) -> int:
    """Free bytes on the file system holding ``path`` (its nearest existing parent)."""
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def detect(disk_path: Path | None = None) -> Hardware:
    """Read this machine's facts (no MLX: `sysctl`, `psutil`, `shutil.disk_usage`).

    Args:
        disk_path: where models will be written (default ``paths.models_dir()``).

    Returns:
        a `Hardware`; ``gpu_limit`` on a Mac: ``iogpu.wired_limit_mb`` when set (non-zero),
        else macOS's default (`units.default_gpu_limit`); elsewhere the system memory.
    """
    import psutil

    from magimac.core import paths

    total = memory_bytes()
    wired = wired_limit_mb()
    if wired:
        limit, source = wired * 1024 * 1024, "sysctl"
    elif sys.platform == "darwin":
        limit, source = default_gpu_limit(total), "macOS default"
    else:
        limit, source = total, "system memory"
    disk = Path(disk_path) if disk_path else paths.models_dir()
    return Hardware(
        system=platform.system(), machine=platform.machine(), chip=chip_name(), total_memory=total,
        available_memory=int(psutil.virtual_memory().available), gpu_limit=limit,
        gpu_limit_source=source, wired_limit_mb=wired, free_disk=free_disk_bytes(disk), disk_path=str(disk),
    )


def assumed_mac(total_memory: int, disk_path: Path | None = None) -> Hardware:
    """A Mac with ``total_memory`` bytes of unified memory at macOS's default wired limit.

    For ``magimac plan --ram 32GB`` (``total_memory`` from `magimac.core.units.parse_size`):
    the disk is this machine's; the limit is `units.default_gpu_limit`, the rule
    `magimac quantize --target-ram` uses too.
    """
    from magimac.core import paths

    disk = Path(disk_path) if disk_path else paths.models_dir()
    return Hardware(
        system="Darwin", machine="arm64", chip="Apple silicon (assumed)", total_memory=total_memory,
        available_memory=total_memory, gpu_limit=default_gpu_limit(total_memory), gpu_limit_source="assumed",
        wired_limit_mb=0, free_disk=free_disk_bytes(disk), disk_path=str(disk),
    )


def os_version() -> str:
    """``"macOS 15.1"`` or the Linux distribution / kernel."""
    if sys.platform == "darwin":
        return f"macOS {platform.mac_ver()[0]}"
    try:
        rel = platform.freedesktop_os_release()
        return f"{rel.get('PRETTY_NAME', 'Linux')} (kernel {platform.release()})"
    except (OSError, AttributeError):
        return f"{platform.system()} {platform.release()}"

