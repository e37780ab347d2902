"""`python -m quantize ...` = `magimac quantize ...`."""

import sys

from magimac.cli import main

raise SystemExit(main(["quantize", *sys.argv[1:]]))
