"""What to offer someone who runs `magimac` with no model installed: the recommendation for
the default model on this machine, its download size, and the bundled demo.

Offline.  The sizes come from `magimac.models.levels`, which builds MLX model skeletons: a
front-end that must not import MLX (the app's missing-model screen) runs `magimac plan --json`
in a subprocess instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from magimac.core.errors import MagimacError
from magimac.core.units import format_bytes
from magimac.models.hardware import Hardware
from magimac.models.plan import Recommendation, load_config, recommend


def first_run_advice(hw: Hardware | None = None) -> "FirstRunAdvice":
    """What to offer someone who runs `magimac` with no model installed (for the TUI).

    Returns a `FirstRunAdvice`: the recommendation for the default model on this machine
    (None when it does not fit), the command that pulls it, its download size, whether the
    disk has room, and the bundled demo model's directory when it is present.  Offline: reads
    the registry, the packaged config and this machine only.  The TUI asks for consent, then
    calls ``magimac.models.pull.pull(advice.model, advice.recommendation.level)``.
    """
    from magimac.models import hardware, store
    from magimac.models.registry import default_model, load_registry

    reg = load_registry()
    entry = default_model(reg)
    hw = hw or hardware.detect()
    rec = None
    try:
        name, config, _src, _inst = load_config(entry.name)
        rec = recommend(name, config, hw)
    except MagimacError:
        pass
    demo = reg.get("demo")
    demo_dir = demo.local_path() if demo else None
    demo_dir = demo_dir if demo_dir is not None and store.is_model_dir(demo_dir) else None
    download = rec.weights_bytes if rec else 0
    if rec:
        msg = (f"No model is installed. {entry.display_name} at {rec.level} with a {rec.context // 1024}K context "
               f"fits this machine: download about {format_bytes(download)} with `{rec.pull_command}`.")
    else:
        msg = f"No model is installed, and {entry.display_name} does not fit this machine's memory."
    if demo_dir:
        msg += " Or try the tiny demo model now: `magimac --model demo`."
    return FirstRunAdvice(entry.name, entry.display_name, rec, download, hw.free_disk >= download * 1.05,
                          demo_dir, msg)


@dataclass(frozen=True)
class FirstRunAdvice:
    """See `first_run_advice`.  ``download_bytes``: the converted weights' size (a ready-made
    conversion downloads that much; converting locally also downloads the 48 GB original)."""

    model: str
    display_name: str
    recommendation: Recommendation | None
    download_bytes: int
    disk_ok: bool
    demo_dir: Path | None
    message: str
