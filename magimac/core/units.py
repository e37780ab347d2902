"""Sizes for the whole project: one parser, one formatter, and the GPU headroom rule.

The unit, decided once:

- **A size a person types is a Mac's memory, as Apple sells it.**  Apple's "32 GB" Mac has
  32 GiB (34.36e9 bytes) of RAM, so `parse_size` reads ``32GB``, ``32 GB``, ``32G``,
  ``32GiB`` and a bare ``32`` all as 32 x 2**30 bytes (``MB``/``M``/``MiB``: 2**20,
  ``TB``/``T``/``TiB``: 2**40).  `magimac plan --ram 32GB` and
  `magimac quantize --target-ram 32GB` both read it here, so both size the same Mac.
- **A size of disk or cache a person types is decimal**, as magimac prints it (next point):
  `parse_size` with ``decimal=True`` reads ``20GB``, ``20G`` and a bare ``20`` as 20 x 10^9
  bytes (``MB``: 10^6, ``TB``: 10^12; an explicit ``GiB``/``MiB`` stays binary).  `magimac cache
  --budget` and `magimac serve --cache-gb` both read it here, so both mean the same GB.
- **A size magimac prints is in decimal units**, as macOS shows file and disk sizes in Finder
  and as the Hugging Face hub lists files: `format_bytes` writes ``GB`` = 10^9 bytes,
  ``MB`` = 10^6, ``KB`` = 10^3, so a download, a model directory and the free disk read the
  same here as in Finder.  A Mac's RAM is printed with ``binary=True`` (``32 GiB``), the
  figure on its box.
- **What the GPU may use** (`gpu_budget`): macOS lets the GPU wire about two thirds of RAM
  on Macs up to 36 GiB and three quarters above (`default_gpu_limit`, the
  ``iogpu.wired_limit_mb`` = 0 default); magimac keeps `HEADROOM_FRACTION` of that limit
  free for activations, the prompt being prefilled and other apps.  `magimac plan`,
  `magimac quantize`, `magimac pull`, `magimac doctor` and the engine's load check all use
  these two functions, so they never disagree on what fits.
"""

from __future__ import annotations

import re

from magimac.core.errors import MagimacError

GB = 10**9  # a printed gigabyte, bytes
GIB = 2**30  # a gibibyte, bytes (and a typed "GB" of memory)
HEADROOM_FRACTION = 0.10
"""Share of the GPU limit kept free (activations, prefill, the OS and other apps)."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.I)
_BINARY = {"kib": 2**10, "mib": 2**20, "gib": GIB, "tib": 2**40}
_SCALES = {"": GIB, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": GIB, "gb": GIB,
           "t": 2**40, "tb": 2**40, **_BINARY}
_DECIMAL_SCALES = {"": GB, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": GB, "gb": GB,
                   "t": 10**12, "tb": 10**12, **_BINARY}


class SizeError(MagimacError, ValueError):
    """A size that cannot be read; the message names it and shows the form to use."""


def parse_size(text: str | int | float, *, decimal: bool = False, zero: bool = False) -> int:
    """Bytes of a size a person typed (see the module docstring for the unit).

    Memory (default): ``"32GB"``, ``"32 GB"``, ``"32G"``, ``"32GiB"``, ``"32"`` -> 34359738368;
    ``"512MB"`` -> 536870912; ``"100B"`` -> 100.  With ``decimal`` (disk and cache sizes):
    ``"20GB"``, ``"20"`` -> 20000000000, ``"512MB"`` -> 512000000, ``"2GiB"`` -> 2147483648.
    ``zero``: 0 is allowed (a budget that turns something off).

    Raises:
        SizeError: not a positive number with one of those units (one line naming ``text``).
    """
    scales = _DECIMAL_SCALES if decimal else _SCALES
    m = _SIZE.match(str(text))
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in scales:
        example = ("20GB or 500MB (GB = 10^9 bytes, as Finder counts)" if decimal else
                   "32GB, 24GiB or 512MB (GB of memory as Apple sells it: 32GB = 32 GiB)")
        raise SizeError(f"cannot read the size {str(text)!r}: write it like {example}")
    value = int(float(m.group(1)) * scales[unit])
    if value < 0 or (value == 0 and not zero):
        raise SizeError(f"a size must be more than 0 bytes, got {str(text)!r}")
    return value


def format_bytes(n: int | float, *, binary: bool = False) -> str:
    """``n`` bytes for people: ``"14.14 GB"``, ``"512.0 MB"``, ``"3.2 KB"``, ``"12 B"``
    (decimal units, as Finder shows files and disks); with ``binary`` (a Mac's RAM):
    ``"32 GiB"``, ``"1.5 GiB"``, ``"512 MiB"``."""
    if binary:
        for unit, size in (("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
            if n >= size:
                return f"{n / size:.1f} {unit}".replace(".0 ", " ")
        return f"{int(n)} B"
    for unit, size in (("GB", GB), ("MB", 10**6), ("KB", 10**3)):
        if n >= size:
            return f"{n / size:.2f} {unit}" if unit == "GB" else f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def default_gpu_limit(ram_bytes: int) -> int:
    """Bytes macOS lets the GPU wire by default on a Mac with ``ram_bytes`` of RAM
    (``iogpu.wired_limit_mb`` = 0): two thirds up to 36 GiB, three quarters above."""
    return ram_bytes * 3 // 4 if ram_bytes > 36 * GIB else ram_bytes * 2 // 3


def gpu_budget(gpu_limit_bytes: int) -> int:
    """Bytes weights plus KV cache may take under a GPU limit of ``gpu_limit_bytes``: the
    limit less `HEADROOM_FRACTION` (the "usable" figure `plan` and `quantize` print)."""
    return int(gpu_limit_bytes * (1 - HEADROOM_FRACTION))


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun`` in the right number: ``"1 block"``, ``"2 blocks"``, ``"1,024 tokens"``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
