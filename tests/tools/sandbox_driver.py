"""Run one piece of code in magimac's python sandbox and print its result as JSON.

The attack suite starts this as an ordinary person (a uid of its own when the tests run as root),
so what the sandbox hides is tested the way that person would meet it:
``python sandbox_driver.py CODE_FILE [ATTACHED_FILE ...]``.
"""

import json
import sys
from pathlib import Path

from magimac.tools.sandbox import SandboxLimits, run_python

limits = SandboxLimits(time_s=8.0, memory_bytes=256 << 20, output_bytes=16384, processes=8)
r = run_python(Path(sys.argv[1]).read_text(), limits, tuple(sys.argv[2:]))
print(json.dumps({"output": r.output, "error": r.error}))
