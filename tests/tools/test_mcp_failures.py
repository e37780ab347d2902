"""MCP servers that fail: one notice line each, and nothing else on stderr."""

from __future__ import annotations

import gc

import pytest

from magimac.tools.mcp_client import MAX_CONFIG_BYTES, McpConfigError, McpTools, ServerConfig, read_servers


def test_a_server_that_never_answers_is_one_notice_and_no_asyncio_noise(caplog):
    tools = McpTools([ServerConfig("mute", "sleep", ("60",))], start_timeout_s=0.5)
    tools.close()
    assert tools.notices == ["mcp server mute: did not start (no answer within 0.5 s)"]
    del tools
    gc.collect()  # asyncio reports a future's unread failure when the future is collected
    assert [r.getMessage() for r in caplog.records] == []  # was "Future exception was never retrieved"


def test_an_mcp_json_over_its_limit_is_one_line(tmp_path):
    path = tmp_path / "mcp.json"
    with open(path, "wb") as f:
        f.truncate(MAX_CONFIG_BYTES + 1)
    with pytest.raises(McpConfigError, match=r"mcp.json: too large \(1.0 MB; the limit is 1.0 MB\)"):
        read_servers(path)
