"""magimac: run Mistral's Magistral reasoning models on your own Mac.

Packages: `magimac` (registry, engine, TUI, CLI) and `quantize` (the conversion step).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("magimac")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
