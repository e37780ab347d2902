"""The app's side of tool calls: which tools a conversation offers, asking before one runs,
showing calls and results as they come, and storing the rounds in history.

A mixin of `magimac.tui.app.MagimacApp`.  Per-conversation settings: ``tools`` (names offered;
default `DEFAULT_TOOLS`) and ``allowed_tools`` (allowed for this conversation: never asked
again).  The permission callback runs in the turn's thread worker: it opens `PermissionScreen`
on the UI thread and waits for the answer (a cancelled turn stops waiting and denies).  The turn
streams into one answer widget; when it ends its rounds become history rows (the round's
assistant row with ``stats["tool_calls"]``, one ``tool`` row per result, then the answer) and
the view is drawn again from them, as it is when the conversation is opened later.
The MCP servers of ``mcp.json`` are started once, when the app starts, in a thread worker (they
may take seconds); their tools are offered in the settings (off until switched on), and a
server that fails, or an mcp.json that cannot be read, is a one-line notice.
"""

from __future__ import annotations

import threading

from magimac.core.events import ToolCall, ToolResult
from magimac.session.tool_loop import DENY, ToolUse
from magimac.text.history import StoredMessage
from magimac.text.tools import NOT_OFFERED
from magimac.tools.sandbox import isolation
from magimac.tools.toolbox import Toolbox
from magimac.tui.messages import ToolEvent
from magimac.tui.tool_blocks import PermissionScreen, ToolBlock

DEFAULT_TOOLS = ("python",)
"""Tools a conversation offers unless its settings say otherwise (every call is asked first)."""


class AppTools:
    """Tool calls in the app (mixed into the App)."""

    mcp = None
    """The `magimac.tools.mcp_client.McpTools` of mcp.json once its servers started, else None."""
    _mcp_closed = False

    def start_mcp(self) -> None:
        """Start mcp.json's servers off the UI thread (nothing to do when it lists none)."""
        from magimac.tools.mcp_client import McpConfigError, read_servers

        try:
            servers = read_servers()
        except McpConfigError as e:
            self.notify(str(e), title="MCP", severity="warning", timeout=10)
            return
        if servers:
            self.run_worker(lambda: self._open_mcp(servers), thread=True, group="mcp", exit_on_error=False)

    def _open_mcp(self, servers) -> None:
        """(Thread worker.) Start the servers, then hand them to the UI thread."""
        from magimac.tools.mcp_client import McpTools

        mcp = McpTools(servers)
        try:
            self.call_from_thread(self._mcp_started, mcp)
        except Exception:  # the app closed meanwhile
            mcp.close()

    def _mcp_started(self, mcp) -> None:
        if self._mcp_closed:
            mcp.close()
            return
        self.mcp = mcp
        for line in mcp.notices:
            self.notify(line, title="MCP", severity="warning", timeout=10)

    def close_mcp(self) -> None:
        """Stop the MCP servers (the app is closing)."""
        self._mcp_closed = True
        mcp, self.mcp = self.mcp, None
        if mcp is not None:
            mcp.close()

    def mcp_specs(self) -> list:
        """The MCP servers' tools (`ToolSpec`s; none until they started)."""
        return self.mcp.specs() if self.mcp is not None else []

    def turn_tools(self) -> ToolUse | None:
        """The `ToolUse` of the conversation's settings, or None when it offers no tools."""
        settings = (self.conversation.settings if self.conversation else None) or {}
        names = tuple(settings.get("tools", DEFAULT_TOOLS))
        if not names:
            return None
        allowed = set(settings.get("allowed_tools", []))
        return ToolUse(Toolbox(names, mcp=self.mcp), self._ask_permission, allowed)

    def _ask_permission(self, call: ToolCall, shown: str) -> str:
        """(Turn worker thread.) Show `PermissionScreen` and wait for the person's answer."""
        answered = threading.Event()
        box: dict = {}

        def done(answer: str | None) -> None:
            box["answer"] = answer or DENY
            answered.set()

        iso = isolation()
        note = "" if call.name != "python" else (f"Sandbox: {iso.how}; 10 s, 1 GiB, 64 KiB of output." if iso.enforced
                                                 else f"It will not run: {iso.how}.")
        screen = PermissionScreen(call, note)
        self.call_from_thread(self.push_screen, screen, done)
        live = self.live
        while not answered.wait(0.05):
            if live is None or live.run.tools is None or live.run.tools.cancel.is_set():
                self.call_from_thread(screen.dismiss, DENY)
                return DENY
        return box["answer"]

    async def on_tool_event(self, message: ToolEvent) -> None:
        """A call started (a block in the answer) or its result came (the block's title)."""
        live = self.live
        if live is None or message.message_id != live.id:
            return
        ev = message.event
        if isinstance(ev, ToolCall):
            block = ToolBlock(ev.name, ev.arguments, ev.raw)
            live.blocks[ev.id] = block
            await live.widget.mount(block, before=live.widget.markdown)
        elif isinstance(ev, ToolResult) and ev.id in live.blocks:
            live.blocks[ev.id].finish(ev)
            if ev.error == NOT_OFFERED:
                self.notify(f"The model called {ev.name[:60]}, a tool this conversation does not offer: it was not "
                            "run (F2 turns tools on)", severity="warning", timeout=10)

    async def store_tool_rounds(self, live, msg: StoredMessage) -> None:
        """The turn used tools: its answer row becomes the first round, the results and the
        answer are added after it, the allowances kept, and the view drawn from the rows."""
        first, *middle, last = live.run.new_messages()
        stats = msg.stats or {}
        round_stats = {"tool_calls": first.tool_calls, "model": stats.get("model"),
                       "reasoning_tokens": stats.get("reasoning_tokens", 0), "thinking_s": stats.get("thinking_s")}
        round_stats = {k: v for k, v in round_stats.items() if v is not None}
        self.history.update_message(msg.id, content=first.content, reasoning=first.reasoning or "",
                                    stats=round_stats, finish_reason="stop")
        msg.content, msg.reasoning, msg.stats, msg.finish_reason = first.content, first.reasoning, round_stats, "stop"
        rows = [msg]
        calls = {c["id"]: c for m in (first, *middle) for c in m.tool_calls}
        cid = self.conversation.id
        for m in middle:
            if m.role == "tool":
                call = calls.get(m.tool_call_id, {})
                rows.append(self.history.add_message(
                    cid, "tool", m.content, reasoning=_call_text(call),
                    stats={"tool_call_id": m.tool_call_id, "name": m.name, "seconds": m.seconds,
                           "arguments": call.get("arguments", "{}")}))
            else:
                rows.append(self.history.add_message(cid, "assistant", m.content, reasoning=m.reasoning,
                                                     stats={"tool_calls": m.tool_calls}, finish_reason="stop"))
        final_stats = {k: v for k, v in stats.items() if k not in ("thinking_s",)}
        rows.append(self.history.add_message(cid, "assistant", last.content, reasoning=last.reasoning,
                                             stats=final_stats, finish_reason=msg.finish_reason))
        self.messages.extend(rows)
        self._keep_allowed(live.run.tools.use.allowed)
        await self.chat.show(self.messages, self.empty_hint())

    def _keep_allowed(self, allowed: set[str]) -> None:
        """Store "allow for this conversation" answers with the conversation's settings."""
        settings = dict(self.conversation.settings or {})
        if set(settings.get("allowed_tools", [])) != allowed:
            settings["allowed_tools"] = sorted(allowed)
            self.history.set_settings(self.conversation.id, settings)
            self.conversation.settings = settings


def _call_text(call: dict) -> str:
    """A call's code (python) or arguments, as searchable text."""
    import json

    try:
        args = json.loads(call.get("arguments") or "{}")
    except json.JSONDecodeError:
        return call.get("arguments", "")
    if isinstance(args, dict) and isinstance(args.get("code"), str):
        return args["code"]
    return call.get("arguments", "")
