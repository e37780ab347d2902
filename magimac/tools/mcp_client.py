"""MCP servers as tools, through the official `mcp` SDK (stdio transport).

Servers are listed in ``mcp.json`` in magimac's config folder, in the shape other MCP hosts
use: ``{"mcpServers": {NAME: {"command": "...", "args": [...], "env": {...}}}}``.  Each server
is started once (its own process, kept for the conversation), initialized, and its tools
listed; a server that fails to start or to answer is one line in `McpTools.notices` and is
left out, never a crash.  The SDK is asyncio-based: the servers live in one background thread
with its own event loop, each in one task that holds its `ClientSession` open (anyio's
context managers must be left in the task that entered them) and serves calls from a queue.
What the project adds: the mcp.json reading, that thread, and the flattening of a tool's
result to text for the model.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from magimac.core.errors import MagimacError, one_line
from magimac.core.files import read_text_file
from magimac.core.paths import config_dir
from magimac.text.tools import ToolSpec

MAX_CONFIG_BYTES = 1_000_000
"""Largest mcp.json read, bytes (1 MB)."""
START_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 60.0


class McpConfigError(MagimacError, ValueError):
    """mcp.json is not in the ``{"mcpServers": {...}}`` shape; one line naming the file."""


@dataclass(frozen=True)
class ServerConfig:
    """One server of mcp.json: its ``name`` and the ``command``, ``args`` and ``env`` that start it."""

    name: str
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


def mcp_file() -> Path:
    """``mcp.json`` in magimac's config folder."""
    return config_dir() / "mcp.json"


def read_servers(path: Path | None = None) -> list[ServerConfig]:
    """The servers of ``path`` (default `mcp_file`); none when the file does not exist.

    Raises:
        McpConfigError: the file is not JSON or not in the mcpServers shape.
    """
    path = path or mcp_file()
    if not path.is_file():
        return []
    try:
        data = json.loads(read_text_file(path, MAX_CONFIG_BYTES, McpConfigError))
    except (json.JSONDecodeError, RecursionError) as e:
        raise McpConfigError(f"{path}: not readable JSON ({one_line(e)})") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise McpConfigError(f"{path}: expected {{\"mcpServers\": {{NAME: {{\"command\", \"args\", \"env\"}}}}}}")
    out = []
    for name, s in servers.items():
        ok = (isinstance(s, dict) and isinstance(s.get("command"), str)
              and all(isinstance(a, str) for a in s.get("args", []))
              and all(isinstance(v, str) for v in (s.get("env") or {}).values()))
        if not ok:
            raise McpConfigError(f"{path}: server {name!r} needs a \"command\" string, \"args\" strings, \"env\" strings")
        out.append(ServerConfig(name, s["command"], tuple(s.get("args", [])), tuple((s.get("env") or {}).items())))
    return out


class McpTools:
    """The tools of the MCP servers, started in a background thread.

    Attributes:
        notices: one line per server that could not start (``mcp server NAME: ...``).
    """

    def __init__(self, servers: list[ServerConfig], start_timeout_s: float = START_TIMEOUT_S) -> None:
        self.notices: list[str] = []
        self._tools: dict[str, tuple[ToolSpec, asyncio.Queue]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="magimac-mcp", daemon=True)
        self._thread.start()
        self._tasks = []
        for s in servers:
            self._start(s, start_timeout_s)

    def specs(self) -> list[ToolSpec]:
        """The tools of the servers that started, in mcp.json's order."""
        return [spec for spec, _ in self._tools.values()]

    def call(self, name: str, arguments: dict, timeout_s: float = CALL_TIMEOUT_S) -> str:
        """Call tool ``name``; returns its text content.

        Raises:
            MagimacError: the tool reported an error, the server went away or did not answer in
                ``timeout_s`` seconds (one line).
        """
        _, queue = self._tools[name]
        fut = asyncio.run_coroutine_threadsafe(self._ask(queue, name, arguments), self._loop)
        try:
            return fut.result(timeout_s)
        except TimeoutError:
            fut.cancel()
            raise MagimacError(f"{name}: no answer within {timeout_s:g} s") from None

    def close(self) -> None:
        """Stop every server (up to 5 s) and the thread."""
        queues = {id(q): q for _, q in self._tools.values()}
        for queue in queues.values():
            self._loop.call_soon_threadsafe(queue.put_nowait, None)
        if self._tasks:
            try:
                asyncio.run_coroutine_threadsafe(asyncio.wait(self._tasks, timeout=5), self._loop).result(6)
            except Exception:  # a server that does not stop in time is left to die with us
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._tools.clear()

    def _start(self, s: ServerConfig, timeout_s: float) -> None:
        ready: "asyncio.Future" = asyncio.run_coroutine_threadsafe(_make_future(), self._loop).result()
        task = asyncio.run_coroutine_threadsafe(_spawn(self._serve(s, ready)), self._loop).result()
        self._tasks.append(task)
        try:
            specs, queue = asyncio.run_coroutine_threadsafe(_wait(ready, timeout_s), self._loop).result(timeout_s + 1)
        except Exception as e:  # any failure to start is a notice, not a crash
            self._loop.call_soon_threadsafe(task.cancel)
            why = f"no answer within {timeout_s:g} s" if isinstance(e, TimeoutError) else one_line(e)
            self.notices.append(f"mcp server {s.name}: did not start ({why})")
            return
        for spec in specs:
            self._tools.setdefault(spec.name, (spec, queue))

    async def _serve(self, s: ServerConfig, ready: "asyncio.Future") -> None:
        """One server's task: start it, list its tools, then answer calls until None arrives."""
        from mcp import ClientSession, StdioServerParameters, stdio_client

        params = StdioServerParameters(command=s.command, args=list(s.args), env=dict(s.env) or None)
        try:
            with open("/dev/null", "w") as errlog:
                async with stdio_client(params, errlog=errlog) as (read, write):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        listed = await session.list_tools()
                        queue: asyncio.Queue = asyncio.Queue()
                        specs = [ToolSpec(t.name, t.description or "", dict(t.input_schema), f"mcp:{s.name}")
                                 for t in listed.tools]
                        ready.set_result((specs, queue))
                        while (req := await queue.get()) is not None:
                            name, args, answer = req
                            try:
                                answer.set_result(_text(await session.call_tool(name, args)))
                            except Exception as e:  # the tool's failure goes back to the model
                                answer.set_exception(MagimacError(f"{name}: {one_line(e)}"))
        except BaseException as e:
            if not ready.done():
                ready.set_exception(e if isinstance(e, Exception) else RuntimeError("stopped"))
            if not isinstance(e, Exception):
                raise

    @staticmethod
    async def _ask(queue: asyncio.Queue, name: str, arguments: dict) -> str:
        answer = asyncio.get_running_loop().create_future()
        await queue.put((name, arguments, answer))
        return await answer


def _text(result) -> str:
    """A `CallToolResult` as text: its text blocks joined (other blocks named); raises
    MagimacError with that text when the tool reported an error."""
    parts = [getattr(b, "text", None) or f"[{getattr(b, 'type', 'content')}]" for b in result.content]
    text = "\n".join(parts)
    if getattr(result, "is_error", False):
        raise MagimacError(text or "the tool reported an error")
    return text


async def _make_future():
    fut = asyncio.get_running_loop().create_future()
    fut.add_done_callback(_retrieve)
    return fut


def _retrieve(fut: "asyncio.Future") -> None:
    """Mark a start's failure as seen: after a start timed out it fails with nobody waiting, and
    asyncio would print "Future exception was never retrieved" on stderr."""
    if not fut.cancelled():
        fut.exception()


async def _spawn(coro):
    return asyncio.get_running_loop().create_task(coro)


async def _wait(fut, timeout_s: float):
    return await asyncio.wait_for(asyncio.shield(fut), timeout_s)


def open_mcp_tools(path: Path | None = None) -> McpTools | None:
    """Start the servers of mcp.json (None when it lists none).

    Raises:
        McpConfigError: as `read_servers`.
    """
    servers = read_servers(path)
    return McpTools(servers) if servers else None
