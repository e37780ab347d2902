"""What only MLX can tell about this machine: its default device, Metal, its version, and
whether it computes (for `magimac doctor`).

Memory and the GPU wired limit are read without MLX (`magimac.models.hardware`); this module
imports MLX inside its functions, so importing it costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from magimac.core.errors import one_line


@dataclass(frozen=True)
class Device:
    """MLX's view of the machine.

    Attributes:
        mlx_device: MLX's default device, ``"gpu"`` or ``"cpu"`` (``""`` when MLX cannot be
            imported); metal: whether MLX's Metal backend is available; name: the device
            name MLX reports (``""`` when it reports none); mlx_version: ``mlx.core``'s
            version (None without MLX); problem: why MLX does not work (None when it imports
            and computes ``1 + 2`` correctly).
    """

    mlx_device: str
    metal: bool
    name: str
    mlx_version: str | None
    problem: str | None


def _works(mx) -> str | None:
    try:
        value = mx.array([1.0, 2.0]).sum().item()
    except Exception as e:  # noqa: BLE001  (any failure here is the finding)
        return f"MLX does not work: {one_line(e)}"
    return None if value == 3.0 else "MLX computed a wrong sum"


def detect() -> Device:
    """Ask MLX about its device; never raises (a broken MLX is `Device.problem`)."""
    try:
        import mlx.core as mx
    except Exception as e:  # noqa: BLE001  (ImportError, or a broken native library)
        return Device("", False, "", None, f"MLX does not work: {one_line(e)}")
    try:
        metal = bool(mx.metal.is_available())
        info = dict(mx.device_info()) if hasattr(mx, "device_info") else (
            dict(mx.metal.device_info()) if metal else {})
    except Exception:  # noqa: BLE001  (a backend without device info is not an error)
        metal, info = False, {}
    kind = "gpu" if mx.default_device().type == mx.gpu else "cpu"
    return Device(kind, metal, str(info.get("device_name", "")), getattr(mx, "__version__", None), _works(mx))
