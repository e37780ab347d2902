"""``POST /v1/chat/completions``: one turn through the session layer, answered whole or as
server-sent events.

Shapes follow OpenAI's chat-completion and chat-completion-chunk objects.  The reasoning goes
in both ``reasoning_content`` (DeepSeek, llama.cpp, LM Studio) and ``reasoning`` (vLLM,
mlx_lm.server, Ollama), on the message and on every delta (shared/MAGISTRAL.md);
``usage.prompt_tokens_details.cached_tokens`` counts the prompt tokens the prefix cache
held, ``completion_tokens_details.reasoning_tokens`` the reasoning tokens.  A model's tool
calls are returned (``message.tool_calls``; streamed as one ``delta.tool_calls`` entry per
complete call, with its ``index``) and the finish reason is then ``"tool_calls"``.  A stream sends
an SSE comment every `KEEPALIVE_S` seconds without tokens (a long prefill), which also shows
early that a client went away.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any, AsyncIterator

from starlette.responses import JSONResponse, StreamingResponse

from magimac.core.events import AnswerDelta, Done, Prefill, ReasoningDelta, ToolCall
from magimac.server.errors import error_body
from magimac.server.turn_pump import TurnPump
from magimac.server.translate import ChatRequest
from magimac.text.openai_wire import call_json, delta_json, usage_json

KEEPALIVE_S = 5.0
FINISH = {"stop": "stop", "length": "length", "cancelled": "stop"}
"""engine finish reason -> OpenAI's (a turn cut by a stop string reads "stop")."""


class Completion:
    """One request's answer: ids and timestamps shared by its chunks."""

    def __init__(self, req: ChatRequest, pump: TurnPump) -> None:
        self.req, self.pump = req, pump
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())

    async def first(self, disconnected=None) -> Any:
        """The first event that shows whether the turn started: a delta, or its Done.

        ``disconnected()``: awaitable, True once the client left; asked at each chunk of a long
        prompt (its `Prefill` events), so a client that leaves while the prompt is read stops
        the turn there (its Done is then ``"cancelled"``)."""
        while True:
            ev = await self.pump.next_event()
            if isinstance(ev, (ReasoningDelta, AnswerDelta, ToolCall, Done)):
                return ev
            if isinstance(ev, Prefill) and disconnected is not None and await disconnected():
                self.pump.cancel()

    @staticmethod
    def failed(done: Done) -> JSONResponse:
        """The HTTP error of a turn that ended before its first token."""
        if done.rejected:
            return JSONResponse(error_body(done.error or "rejected"), status_code=400)
        return JSONResponse(error_body(done.error or "the engine failed", "server_error"), status_code=500)

    async def whole(self, first: Any, disconnected) -> JSONResponse:
        """Collect the turn to its Done; ``disconnected()``: awaitable, True once the client left."""
        reasoning, content, calls, ev = [], [], [], first
        while not isinstance(ev, Done):
            if isinstance(ev, ReasoningDelta):
                reasoning.append(ev.text)
            elif isinstance(ev, AnswerDelta):
                content.append(ev.text)
            elif isinstance(ev, ToolCall):
                calls.append(call_json(ev.id, ev.name, ev.raw))
            try:
                ev = await asyncio.wait_for(self.pump.next_event(), timeout=KEEPALIVE_S)
            except asyncio.TimeoutError:
                if await disconnected():
                    self.pump.cancel()
                ev = None
        if ev.finish_reason == "error":
            return JSONResponse(error_body(ev.error or "the engine failed", "server_error"), status_code=500)
        r = "".join(reasoning) or None
        message = {"role": "assistant", "content": "".join(content) or (None if calls else ""),
                   "reasoning_content": r, "reasoning": r}
        if calls:
            message["tool_calls"] = calls
        return JSONResponse({
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.req.model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": self.finish(ev, bool(calls))}],
            "usage": usage_json(ev.stats),
        })

    @staticmethod
    def finish(done: Done, called: bool) -> str:
        """OpenAI's finish reason: ``"tool_calls"`` when the turn ended after calls."""
        if called and done.finish_reason == "stop":
            return "tool_calls"
        return FINISH.get(done.finish_reason, "stop")

    def chunk(self, delta: dict, finish: str | None = None, **extra) -> str:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.req.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    async def events(self, first: Any) -> AsyncIterator[str]:
        """The SSE stream: a role chunk, reasoning and content deltas, the finish chunk, the usage
        chunk when asked, then ``data: [DONE]``."""
        yield self.chunk({"role": "assistant", "content": ""})
        ev, calls = first, 0
        while not isinstance(ev, Done):
            if isinstance(ev, ToolCall) or (isinstance(ev, (ReasoningDelta, AnswerDelta)) and ev.text):
                yield self.chunk(delta_json(ev, calls))
                calls += isinstance(ev, ToolCall)
            try:
                ev = await asyncio.wait_for(self.pump.next_event(), timeout=KEEPALIVE_S)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                ev = None
        if ev.finish_reason == "error":
            body = error_body(ev.error or "the engine failed", "server_error")
            yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
        else:
            yield self.chunk({}, self.finish(ev, calls > 0))
            if self.req.include_usage:
                body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.req.model, "choices": [], "usage": usage_json(ev.stats)}
                yield f"data: {json.dumps(body)}\n\n"
        yield "data: [DONE]\n\n"


class TurnStream(StreamingResponse):
    """A `StreamingResponse` that cancels its turn however the response ends (a client that
    disconnects makes Starlette cancel the stream: the turn then stops within one token)."""

    def __init__(self, content: AsyncIterator[str], pump: TurnPump) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.pump = pump

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.pump.cancel()
