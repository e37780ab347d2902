"""A tiny stdio MCP server for the tests (written with the `mcp` SDK): one tool, ``add``."""

from __future__ import annotations

import textwrap
from pathlib import Path

MCP_SERVER = textwrap.dedent('''
    from mcp.server.mcpserver import MCPServer

    app = MCPServer("sums")


    @app.tool()
    def add(a: int, b: int) -> int:
        """Add two whole numbers."""
        return a + b


    app.run()
''')
"""The server's source: run it with ``python FILE``; it offers ``add(a, b) -> a + b``."""


def write_mcp_json(config_dir: Path, folder: Path, python: str) -> Path:
    """Write the server to ``folder/sums_server.py`` and ``config_dir/mcp.json`` listing it
    (as ``sums``, started with ``python``) and a ``broken`` server whose command does not
    exist; returns the server's path."""
    import json

    server = folder / "sums_server.py"
    server.write_text(MCP_SERVER)
    servers = {"sums": {"command": python, "args": [str(server)], "env": {}},
               "broken": {"command": str(folder / "no-such-server")}}
    (config_dir / "mcp.json").write_text(json.dumps({"mcpServers": servers}))
    return server
