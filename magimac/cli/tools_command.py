"""`magimac tools`: the built-in tools and the tools of the MCP servers in mcp.json.

One line per tool: name, where it comes from, its description; then what the python sandbox
enforces on this machine.  MCP servers are started to list their tools; one that fails to
start is a line on stderr.  ``--json``: ``{"tools": [{"name", "source", "description",
"parameters"}], "sandbox": {...}, "notices": [...], "mcp_file"}``.
"""

from __future__ import annotations

import argparse
import json
import sys

from magimac.text.tools import BUILTIN_TOOLS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from magimac.tools.mcp_client import mcp_file, open_mcp_tools
    from magimac.tools.sandbox import SandboxLimits, isolation

    mcp = open_mcp_tools()
    try:
        tools = [*BUILTIN_TOOLS, *(mcp.specs() if mcp else [])]
        notices = mcp.notices if mcp else []
    finally:
        if mcp is not None:
            mcp.close()
    lim, iso = SandboxLimits(), isolation()
    if args.json:
        print(json.dumps({"tools": [{"name": t.name, "source": t.source, "description": t.description,
                                     "parameters": t.parameters} for t in tools],
                          "sandbox": {"time_s": lim.time_s, "memory_bytes": lim.memory_bytes,
                                      "output_bytes": lim.output_bytes, "enforced": iso.enforced,
                                      "network_isolated": iso.network, "files_isolated": iso.files,
                                      "processes_isolated": iso.processes, "how": iso.how},
                          "notices": notices, "mcp_file": str(mcp_file())}, ensure_ascii=False))
        return 0
    width = max(len(t.name) for t in tools)
    for t in tools:
        print(f"{t.name:<{width}}  {t.source:<10}  {t.description}")
    print(f"\npython sandbox: {lim.time_s:g} s, {lim.memory_bytes >> 20} MiB, {lim.output_bytes >> 10} KiB of output; "
          f"{iso.how}")
    print(f"MCP servers: {mcp_file()}" + ("" if mcp_file().is_file() else " (none: the file does not exist)"))
    for n in notices:
        print(f"magimac: {n}", file=sys.stderr)
    return 0
