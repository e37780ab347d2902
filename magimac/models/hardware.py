"""Facts about this machine that decide what model fits: chip, memory, GPU wired limit, disk.

On a Mac, MLX runs on the GPU out of unified memory, and macOS lets the GPU *wire* only part
of it: Metal's ``recommendedMaxWorkingSetSize`` (read through MLX's device info), unless
``sysctl iogpu.wired_limit_mb`` raises or lowers it (0 means the default).  On Linux MLX runs
on its CPU backend (or CUDA), and the budget is the system memory.

Nothing here imports Textual; MLX is imported lazily and only its device queries are used
(never a Metal-only call without ``mx.metal.is_available()``).
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

GIB = 1 << 30

@dataclass(frozen=True)
class Hardware:
    """What this machine offers a model.

    Attributes:
        system: ``platform.system()``: ``"Darwin"`` or ``"Linux"``.
        machine: ``platform.machine()``, e.g. ``"arm64"``, ``"x86_64"``.
        chip: CPU or SoC name, e.g. ``"Apple M4 Pro"`` (``""`` when unknown).
        total_memory: system (unified) memory, bytes.
        available_memory: memory free for new allocations now, bytes.
        mlx_device: MLX's default device, e.g. ``"gpu"`` or ``"cpu"`` (``""`` without MLX).
        metal: whether MLX's Metal backend is available.
        gpu_limit: bytes the model may use: Metal's recommended working set, the
            ``iogpu.wired_limit_mb`` sysctl when set, else the system memory (Linux).
        gpu_limit_source: where ``gpu_limit`` came from (``"metal"``, ``"sysctl"``,
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
    mlx_device: str
    metal: bool
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


def mlx_device_info() -> tuple[str, bool, dict]:
    """MLX's default device name, whether Metal is available, and MLX's device info dict.

    Returns ``("", False, {})`` when MLX cannot be imported.
    """
    try:
        import mlx.core as mx
    except ImportError:
        return "", False, {}
    metal = bool(mx.metal.is_available())
    try:
        info = dict(mx.device_info()) if hasattr(mx, "device_info") else (
            dict(mx.metal.device_info()) if metal else {})
    except Exception:  # noqa: BLE001  (a backend without device info is not an error)
        info = {}
    device = mx.default_device()
    kind = "gpu" if device.type == mx.gpu else "cpu"
    return kind, metal, info


def free_disk_bytes(path: Path) -> int:
    """Free bytes on the file system holding ``path`` (its nearest existing parent)."""
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def detect(disk_path: Path | None = None) -> Hardware:
    """Read this machine's facts.

    Args:
        disk_path: where models will be written (default ``paths.models_dir()``).

    Returns:
        a `Hardware`.  ``gpu_limit`` on a Mac: ``iogpu.wired_limit_mb`` when set (non-zero),
        else Metal's ``max_recommended_working_set_size``; elsewhere the system memory.
    """
    import psutil

    from magimac.core import paths

    vm = psutil.virtual_memory()
    device, metal, info = mlx_device_info()
    wired = wired_limit_mb()
    if wired:
        limit, source = wired * 1024 * 1024, "sysctl"
    elif metal and info.get("max_recommended_working_set_size"):
        limit, source = int(info["max_recommended_working_set_size"]), "metal"
    else:
        limit, source = int(vm.total), "system memory"
    disk = Path(disk_path) if disk_path else paths.models_dir()
    return Hardware(
        system=platform.system(),
        machine=platform.machine(),
        chip=chip_name() or str(info.get("device_name", "")),
        total_memory=int(info.get("memory_size") or vm.total),
        available_memory=int(vm.available),
        mlx_device=device,
        metal=metal,
        gpu_limit=limit,
        gpu_limit_source=source,
        wired_limit_mb=wired,
        free_disk=free_disk_bytes(disk),
        disk_path=str(disk),
    )


def assumed_mac(total_memory: int, disk_path: Path | None = None) -> Hardware:
    """A Mac with ``total_memory`` bytes of unified memory at macOS's default wired limit.

    For ``magimac plan --ram 32GB``: the disk is this machine's; the limit is macOS's default
    working set, `magimac.quantize.sizes.usable_memory` (2/3 of RAM up to 36 GiB, 3/4 above).
    """
    from magimac.core import paths
    from magimac.quantize.sizes import usable_memory

    disk = Path(disk_path) if disk_path else paths.models_dir()
    return Hardware(
        system="Darwin", machine="arm64", chip="Apple silicon (assumed)", total_memory=total_memory,
        available_memory=total_memory, mlx_device="gpu", metal=True,
        gpu_limit=usable_memory(total_memory), gpu_limit_source="assumed", wired_limit_mb=0,
        free_disk=free_disk_bytes(disk), disk_path=str(disk),
    )


def parse_bytes(text: str) -> int:
    """``"32GB"``, ``"32G"``, ``"24 GiB"``, ``"512MB"``, ``"32"`` (GB) -> bytes.

    Memory is sold in binary units, so ``GB`` and ``GiB`` both mean 2**30 here (a "32 GB"
    Mac has 32 GiB).  Raises ValueError with a one-line message on anything else.
    """
    s = text.strip().upper().replace(" ", "")
    units = {"TIB": 1 << 40, "TB": 1 << 40, "T": 1 << 40, "GIB": GIB, "GB": GIB, "G": GIB,
             "MIB": 1 << 20, "MB": 1 << 20, "M": 1 << 20}
    for unit, scale in units.items():
        if s.endswith(unit):
            number = s[: -len(unit)]
            break
    else:
        number, scale = s, GIB
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"cannot read memory size {text!r}: write it like 32GB or 24GiB") from None
    if value <= 0:
        raise ValueError(f"memory size must be positive, got {text!r}")
    return int(value * scale)


def os_version() -> str:
    """``"macOS 15.1"`` or the Linux distribution / kernel."""
    if sys.platform == "darwin":
        return f"macOS {platform.mac_ver()[0]}"
    try:
        rel = platform.freedesktop_os_release()
        return f"{rel.get('PRETTY_NAME', 'Linux')} (kernel {platform.release()})"
    except (OSError, AttributeError):
        return f"{platform.system()} {platform.release()}"

