"""Apple-silicon chips and their unified-memory bandwidth, for the decode-speed ceiling.

Decoding reads every weight once per token, so tokens/s cannot exceed
``bandwidth / bytes read per token`` (shared/MAGISTRAL.md). The table gives Apple's published
peak memory bandwidth per chip (GB/s, 1 GB = 10^9 bytes); where one chip name comes in two
bandwidths (M3 Max, M4 Max) the GPU core count decides.
"""

from __future__ import annotations

import platform
import re
import subprocess
from dataclasses import dataclass

_NEWSROOM = "https://www.apple.com/newsroom/"


@dataclass(frozen=True)
class Chip:
    """One chip configuration.

    Attributes:
        name: as in ``sysctl machdep.cpu.brand_string`` without "Apple", e.g. ``"M4 Pro"``;
        bandwidth_gbs: peak unified-memory bandwidth in GB/s (10^9 bytes/s);
        gpu_cores: the GPU core count this figure applies to (None: every configuration);
        source: where the figure is published.
    """

    name: str
    bandwidth_gbs: float
    gpu_cores: int | None
    source: str


CHIPS: tuple[Chip, ...] = (
    Chip("M1", 68.25, None, "derived: LPDDR4X-4266 x 128-bit bus; Apple gives M1 Pro's 200 GB/s "
         "as 'nearly 3x' M1 (" + _NEWSROOM + "2021/10/introducing-m1-pro-and-m1-max)"),
    Chip("M1 Pro", 200, None, _NEWSROOM + "2021/10/introducing-m1-pro-and-m1-max"),
    Chip("M1 Max", 400, None, _NEWSROOM + "2021/10/introducing-m1-pro-and-m1-max"),
    Chip("M1 Ultra", 800, None, _NEWSROOM + "2022/03/apple-unveils-m1-ultra"),
    Chip("M2", 100, None, _NEWSROOM + "2022/06/apple-unveils-m2"),
    Chip("M2 Pro", 200, None, _NEWSROOM + "2023/01/apple-unveils-m2-pro-and-m2-max"),
    Chip("M2 Max", 400, None, _NEWSROOM + "2023/01/apple-unveils-m2-pro-and-m2-max"),
    Chip("M2 Ultra", 800, None, _NEWSROOM + "2023/06/apple-introduces-m2-ultra"),
    Chip("M3", 100, None, "Apple MacBook Pro (14-inch, M3, Nov 2023) tech specs"),
    Chip("M3 Pro", 150, None, "Apple MacBook Pro (M3 Pro, Nov 2023) tech specs"),
    Chip("M3 Max", 300, 30, "Apple MacBook Pro (M3 Max 14-core CPU / 30-core GPU) tech specs"),
    Chip("M3 Max", 400, 40, "Apple MacBook Pro (M3 Max 16-core CPU / 40-core GPU) tech specs"),
    Chip("M3 Ultra", 819, None, _NEWSROOM + "2025/03/apple-reveals-m3-ultra"),
    Chip("M4", 120, None, _NEWSROOM + "2024/05/apple-introduces-m4-chip"),
    Chip("M4 Pro", 273, None, _NEWSROOM + "2024/10/apple-introduces-m4-pro-and-m4-max"),
    Chip("M4 Max", 410, 32, _NEWSROOM + "2024/10/apple-introduces-m4-pro-and-m4-max"),
    Chip("M4 Max", 546, 40, _NEWSROOM + "2024/10/apple-introduces-m4-pro-and-m4-max"),
    Chip("M5", 153, None, _NEWSROOM + "2025/10/apple-unleashes-m5"),
)


def find_chip(name: str, gpu_cores: int | None = None) -> Chip | None:
    """The table entry for ``name`` (e.g. ``"Apple M4 Max"``, case-insensitive).

    When the name has several entries, ``gpu_cores`` picks one; without it, None (unknown)
    rather than a guess.
    """
    key = re.sub(r"^apple\s+", "", name.strip(), flags=re.I).lower()
    matches = [c for c in CHIPS if c.name.lower() == key]
    if len(matches) == 1:
        return matches[0]
    for c in matches:
        if c.gpu_cores == gpu_cores:
            return c
    return None


def _gpu_cores() -> int | None:
    """The GPU core count from ``system_profiler SPDisplaysDataType`` (macOS), else None."""
    try:
        out = subprocess.run(["system_profiler", "SPDisplaysDataType"], capture_output=True,
                             text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"Total Number of Cores:\s*(\d+)", out)
    return int(m.group(1)) if m else None


def detect_chip() -> tuple[str, Chip | None]:
    """This machine's chip: ``(name from `magimac.models.hardware.chip_name`, table entry or None)``.

    On macOS, when the name alone is ambiguous (M3 Max, M4 Max), the GPU core count from
    ``system_profiler`` picks the entry. Off macOS the entry is None.
    """
    from magimac.models.hardware import chip_name

    name = chip_name()
    if platform.system() != "Darwin" or not name:
        return name, None
    return name, find_chip(name) or find_chip(name, _gpu_cores())
