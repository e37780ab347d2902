"""`magimac doctor`: this machine's facts, the versions of the stack, and what is wrong.

Exit status 1 when something is an error (magimac cannot run as installed), 0 otherwise
(warnings included).  Offline: reads this machine, the installed packages and models only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from importlib import metadata

from magimac.core.errors import one_line
from magimac.core.units import format_bytes
PACKAGES = ("mlx", "mlx-lm", "mlx-vlm", "mistral-common", "huggingface-hub", "transformers", "textual", "magimac")
REQUIRED = ("mlx", "mlx-lm", "mlx-vlm", "mistral-common", "huggingface-hub", "textual")


@dataclass(frozen=True)
class Finding:
    """One problem: ``level`` ``"error"`` or ``"warning"``, what is wrong, and the fix."""

    level: str
    message: str
    fix: str = ""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def versions() -> dict[str, str | None]:
    """Python's version and the installed versions of `PACKAGES` (None: not installed)."""
    return {"python": platform.python_version(), **{name: _version(name) for name in PACKAGES}}


def check_packages(found: dict[str, str | None]) -> list[Finding]:
    """Missing required packages, and installed versions below magimac's declared minimums."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    problems = [Finding("error", f"{n} is not installed", "pip install magimac (or reinstall it)")
                for n in REQUIRED if found.get(n) is None]
    try:
        reqs = metadata.requires("magimac") or []
    except metadata.PackageNotFoundError:
        reqs = []
    for line in reqs:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        have = found[req.name] if req.name in found else _version(req.name)
        if have is not None and req.specifier and not req.specifier.contains(Version(have), prereleases=True):
            problems.append(Finding("error", f"{req.name} {have} is installed, magimac needs {req.specifier}",
                                    f"pip install '{req.name}{req.specifier}'"))
    return problems


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_platform(hw, dev) -> list[Finding]:
    """Apple silicon with a native arm64 Python is what magimac is made for (``hw``: a
    `hardware.Hardware`; ``dev``: MLX's `magimac.engine.device.Device`)."""
    if hw.system == "Darwin" and hw.machine != "arm64":
        return [Finding("error", f"this Python runs as {hw.machine}: MLX needs Apple silicon and a native arm64 Python",
                        "install an arm64 Python (not under Rosetta) on an M-series Mac")]
    if dev.problem:
        return []  # `check_mlx` reports it
    if hw.system == "Darwin" and not dev.metal:
        return [Finding("error", "MLX cannot use the GPU (Metal is not available)", "update macOS and mlx")]
    if hw.system != "Darwin" and dev.mlx_device != "gpu":
        return [Finding("warning", f"MLX runs on the CPU here ({hw.system}): fine for tests and the demo model, "
                                   "far too slow for Magistral Small", "use an Apple-silicon Mac")]
    return []


def check_mlx(dev) -> list[Finding]:
    """MLX imports and computes (``dev.problem`` of `magimac.engine.device.detect`)."""
    if dev.problem is None:
        return []
    fix = "reinstall mlx" if "wrong sum" in dev.problem else "reinstall mlx (pip install --force-reinstall mlx)"
    return [Finding("error", dev.problem, fix)]


def check_memory_and_disk(hw) -> list[Finding]:
    """Whether the default model fits this machine, the wired limit, the free disk."""
    from magimac.models import plan
    from magimac.models.advice import first_run_advice

    out = []
    advice = first_run_advice(hw)
    rec = advice.recommendation
    if rec is None:
        out.append(Finding("warning", f"{advice.display_name} does not fit this machine's GPU memory "
                                      f"({format_bytes(plan.budget_bytes(hw))} usable)",
                           "use the demo model, or a Mac with 32 GB or more"))
    elif rec.level in plan.FALLBACK_LEVELS:
        out.append(Finding("warning", f"{advice.display_name} fits only at {rec.level}, which loses quality",
                           "a Mac with 32 GB runs it at 4-bit"))
    if hw.wired_limit_mb and hw.wired_limit_mb * 2**20 > 0.9 * hw.total_memory:
        out.append(Finding("warning", f"iogpu.wired_limit_mb={hw.wired_limit_mb} leaves macOS under 10% of memory: "
                                      "it may swap or freeze", "sudo sysctl iogpu.wired_limit_mb=0 (the default)"))
    if rec and not advice.disk_ok:
        out.append(Finding("warning", f"{format_bytes(hw.free_disk)} free at {hw.disk_path}, the recommended "
                                      f"{rec.level} model needs {format_bytes(advice.download_bytes)}",
                           "free disk space or set MAGIMAC_MODELS_DIR to a larger disk"))
    return out


def check_models(hw) -> list[Finding]:
    """Installed models: none at all, or ones that do not fit this machine."""
    from magimac.models import plan, store

    models = [m for m in store.installed_models() if m.where != "bundled"]
    if not models:
        return [Finding("warning", "no model is installed", "magimac pull (see `magimac plan` for the level)")]
    out = []
    for m in models:
        try:
            plan.check_fits(m.path, hw=hw)
        except plan.DoesNotFit as e:
            out.append(Finding("warning", str(e), f"magimac rm {m.name}"))
        except Exception as e:  # noqa: BLE001  (a broken model dir is a finding, not a crash)
            out.append(Finding("warning", f"{m.path}: {one_line(e)}", f"magimac rm {m.name}"))
    return out


def check_dirs() -> list[Finding]:
    """The models directory (or its nearest existing parent) is writable."""
    from magimac.core import paths

    d = paths.models_dir()
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return [Finding("error", f"{probe} is not writable: models cannot be installed there",
                        "set MAGIMAC_MODELS_DIR to a writable directory")]
    return []


def check_leftovers() -> list[Finding]:
    """Partial conversions left by killed `magimac quantize` runs (their process gone) in the
    models directory, the benchmark's conversions and the folders quantize wrote into
    (`magimac.core.staging.remember_place`), each with its size."""
    from magimac.core import paths, staging

    places = [paths.models_dir(), paths.data_dir() / "bench" / "variants", *staging.remembered_places()]
    found = []
    for place in dict.fromkeys(p.expanduser().absolute() for p in places):
        for p in staging.find_stale(place, staging.partial_prefix()):
            found.append(Finding("warning", f"{p} ({format_bytes(staging.tree_bytes(p))}) is a partial conversion "
                                            "left by a magimac quantize that was killed",
                                 f"rm -rf '{p}' (the next magimac quantize into {place} removes it too)"))
    return found


def diagnose() -> tuple[dict, dict, list[Finding]]:
    """``(facts, versions, findings)``; findings are errors first, then warnings."""
    from magimac.engine.device import detect
    from magimac.models import hardware
    from magimac.models.registry import RegistryError, load_registry

    hw = hardware.detect()
    dev = detect()
    found = versions()
    findings = check_platform(hw, dev) + check_packages(found) + check_mlx(dev) + check_dirs() + check_leftovers()
    try:
        load_registry()
    except RegistryError as e:
        findings.append(Finding("error", str(e), "fix or remove that file"))
    else:
        findings += check_memory_and_disk(hw) + check_models(hw)
    facts = {**hw.to_dict(), "mlx_device": dev.mlx_device, "metal": dev.metal, "device_name": dev.name}
    facts["os"] = hardware.os_version()
    facts["hf_hub_offline"] = os.environ.get("HF_HUB_OFFLINE", "")
    findings.sort(key=lambda f: f.level != "error")
    return facts, found, findings


def run(args: argparse.Namespace) -> int:
    facts, found, findings = diagnose()
    failed = any(f.level == "error" for f in findings)
    if args.json:
        print(json.dumps({"facts": facts, "versions": found, "findings": [asdict(f) for f in findings]}, indent=2))
        return 1 if failed else 0
    limit = f"{format_bytes(facts['gpu_limit'])} ({facts['gpu_limit_source']})"
    lines = [
        f"machine      {facts['chip'] or facts['machine']} ({facts['machine']}), {facts['os']}",
        f"memory       {format_bytes(facts['total_memory'], binary=True)} total, "
        f"{format_bytes(facts['available_memory'], binary=True)} available",
        f"GPU limit    {limit}" + (f", iogpu.wired_limit_mb={facts['wired_limit_mb']}"
                                   if facts["wired_limit_mb"] is not None else ""),
        f"MLX device   {facts['mlx_device'] or 'none'}" + (" (Metal)" if facts["metal"] else ""),
        f"free disk    {format_bytes(facts['free_disk'])} at {facts['disk_path']}",
        "versions     " + ", ".join(f"{k} {v or 'missing'}" for k, v in found.items()),
    ]
    print("\n".join(lines))
    if not findings:
        print("found nothing wrong")
    for f in findings:
        print(f"{f.level}: {f.message}" + (f" -> {f.fix}" if f.fix else ""), file=sys.stdout)
    return 1 if failed else 0
