"""The conversation view: user messages, and assistant answers with their reasoning."""

from __future__ import annotations

import re
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Button, Markdown, Static
from textual.widgets.markdown import MarkdownStream

from magimac.text.history import Attachment, StoredMessage
from magimac.text.latex import markdown_math_to_unicode
from magimac.tui.reasoning import ReasoningBlock, thought_title
from magimac.tui.streaming import Chunk

FINISH_NOTES = {
    "cancelled": "stopped",
    "length": "stopped at the token limit",
    None: "interrupted",
}
_FENCE = re.compile(r"^(`{3,}|~{3,})[^\n]*\n(.*?)^\1[ \t]*$", re.S | re.M)


def code_blocks(markdown: str) -> list[str]:
    """The contents of the fenced code blocks of ``markdown``, in order."""
    return [m.group(2) for m in _FENCE.finditer(markdown)]


def attachment_line(att: Attachment) -> str:
    """``📎 image  cat.png`` for the conversation view."""
    return f"📎 {att.kind}  {Path(att.path).name}"


class UserMessage(Vertical):
    """A user's message with its attachments."""

    def __init__(self, message: StoredMessage) -> None:
        super().__init__(classes="message user")
        self.message = message

    def compose(self) -> ComposeResult:
        yield Static(self.message.content, classes="user-text", markup=False)
        for att in self.message.attachments:
            yield Static(attachment_line(att), classes="attachment", markup=False)


def rendered_answer(message: StoredMessage) -> str:
    """The answer as shown: LaTeX as Unicode, and citations ``[1]`` of library passages as
    links that open the passage (`magimac.tui.citations.link_citations`)."""
    from magimac.tui.citations import link_citations

    return link_citations(markdown_math_to_unicode(message.content), (message.stats or {}).get("documents"))


class AssistantMessage(Vertical):
    """An answer: its reasoning block, the Markdown answer and a note when it did not finish.

    Streaming: `begin_stream`, then `add` per UI chunk, then `finish`; the answer streams
    through Textual's `MarkdownStream` and is rendered once more in full (with LaTeX as
    Unicode) at the end.
    """

    def __init__(self, message: StoredMessage, *, live: bool = False) -> None:
        super().__init__(classes="message assistant")
        self.message = message
        self.live = live
        self.answer_text = message.content
        self._stream: MarkdownStream | None = None
        self._folded = not live
        stats = message.stats or {}
        if live:
            title, collapsed = "Thinking…", False
        else:
            title = thought_title(int(stats.get("reasoning_tokens", 0)), stats.get("thinking_s"))
            collapsed = True
        self.reasoning = ReasoningBlock(message.reasoning or "", title=title, collapsed=collapsed,
                                        classes="reasoning")
        self.reasoning.display = bool(message.reasoning) or live
        self.markdown = Markdown(rendered_answer(message) if not live else "", classes="answer",
                                 open_links=False)  # `on_markdown_link_clicked` opens them
        self.note = Static("", classes="note", markup=False)
        self.source = Static("", classes="source", markup=False)
        self.show_source(stats)
        if not live:
            self._set_note(message.finish_reason, (message.stats or {}).get("error"))

    def show_source(self, stats: dict) -> None:
        """``☁ Mistral API · Mistral Medium 3.5 · API`` above an answer that came from an online
        model (``stats["service"]``); nothing for a local one."""
        service = stats.get("service")
        self.source.update(f"☁ {service} · {stats.get('model') or ''}".rstrip(" ·") if service else "")
        self.source.display = bool(service)

    def compose(self) -> ComposeResult:
        documents = (self.message.stats or {}).get("documents")
        if documents:  # the passages of attached documents this answer was given
            yield Static(f"📄 {documents['summary']}", classes="attachment", markup=False)
            if any(p.get("n") for p in documents.get("passages", [])):
                from magimac.tui.citations import Citations

                yield Citations(documents["passages"])
        yield self.source
        yield self.reasoning
        yield self.markdown
        yield self.note

    def _set_note(self, finish_reason: str | None, error: str | None = None) -> None:
        if finish_reason == "error":
            text = f"error: {error}" if error else "error"
        elif finish_reason == "stop" and not self.message.content.strip() and not (self.message.stats or {}).get("tool_calls"):
            text = "no answer after the reasoning (regenerate with Ctrl+R)"
        else:
            text = FINISH_NOTES.get(finish_reason, "")
        self.note.update(f"⏹ {text}" if text else "")
        self.note.display = bool(text)

    def on_markdown_link_clicked(self, event: Markdown.LinkClicked) -> None:
        """A citation link (``cite:N``) opens its passage; other links open as Textual does."""
        event.stop()
        from magimac.tui.citations import open_citation

        if not open_citation(self.app, event.href, (self.message.stats or {}).get("documents")):
            self.app.open_url(event.href)

    def begin_stream(self) -> None:
        """Start the answer's MarkdownStream (call once mounted)."""
        self._stream = Markdown.get_stream(self.markdown)

    async def add(self, chunk: Chunk) -> None:
        """Show one batch of streamed text (a `streaming.Chunk`)."""
        if chunk.thinking_s is None:
            self.reasoning.append(chunk.reasoning, chunk.reasoning_tokens, chunk.elapsed_s)
        elif not self._folded:
            self._folded = True
            if chunk.reasoning or self.reasoning.text:
                self.reasoning.append(chunk.reasoning, chunk.reasoning_tokens, chunk.elapsed_s)
                self.reasoning.finish(chunk.reasoning_tokens, chunk.thinking_s)
            else:
                self.reasoning.display = False
        if chunk.answer:
            self.answer_text += chunk.answer
            if self._stream is not None:
                await self._stream.write(chunk.answer)

    async def finish(self, message: StoredMessage) -> None:
        """End streaming: the final answer rendered in full, reasoning folded, note set."""
        self.message = message
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        self.answer_text = message.content
        await self.markdown.update(rendered_answer(message))
        stats = message.stats or {}
        self.show_source(stats)
        if message.reasoning:
            self.reasoning.display = True
            self.reasoning.finish(int(stats.get("reasoning_tokens", 0)), stats.get("thinking_s"),
                                  text=message.reasoning)
        else:
            self.reasoning.display = False
        self._set_note(message.finish_reason, stats.get("error"))
        self.live = False


WINDOW_MESSAGES = 6
"""Most messages mounted in the view (the newest ones; a "show earlier" button mounts more).

Textual lays out every mounted widget again whenever one changes size, which a streaming answer
does many times a second, and a finished Markdown answer is dozens of widgets (one per block):
measured with ``bench/bench_tui.py`` (30 tokens/s, earlier answers of 31 paragraphs each), the
UI thread's share of a core grew from 0.13 with an empty conversation to 0.27 with 5 earlier
answers and 0.52 with 20.  Keeping the view to the newest messages while an answer streams keeps
that cost flat however long the conversation grows; chat apps page their history the same way."""


class EarlierMessages(Button):
    """The button at the top of a windowed conversation: "↑ N earlier messages"."""

    def __init__(self, count: int) -> None:
        super().__init__(self.label_for(count), classes="earlier", compact=True)

    @staticmethod
    def label_for(count: int) -> str:
        return f"↑ {count} earlier message{'s' if count != 1 else ''} (click or Enter to show)"


class ChatView(VerticalScroll):
    """The scrolling list of a conversation's messages.

    Only the newest `WINDOW_MESSAGES` are mounted when a conversation opens or a message is
    added; older ones wait in ``earlier`` (oldest first) behind an `EarlierMessages` button that
    mounts them a window at a time.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.earlier: list[StoredMessage] = []
        self._stick = True  # keep the end in view as content grows or the terminal resizes

    def message_widget(self, message: StoredMessage, live: bool = False):
        """A widget for one stored message (a ``tool`` row: its folded `ToolBlock`)."""
        if message.role == "tool":
            from magimac.tui.tool_blocks import ToolBlock

            return ToolBlock.from_row(message)
        return UserMessage(message) if message.role == "user" else AssistantMessage(message, live=live)

    async def show(self, messages: list[StoredMessage], empty_text: str) -> None:
        """Replace the contents with ``messages`` (or a hint when there are none)."""
        await self.remove_children()
        shown = [m for m in messages if m.role in ("user", "assistant", "tool")]
        self.earlier = shown[:-WINDOW_MESSAGES] if len(shown) > WINDOW_MESSAGES else []
        widgets = [self.message_widget(m) for m in shown[len(self.earlier):]]
        if not widgets:
            widgets = [Static(empty_text, classes="empty-hint", markup=False)]
        if self.earlier:
            widgets.insert(0, EarlierMessages(len(self.earlier)))
        self._stick = True
        await self.mount_all(widgets)
        self.scroll_end(animate=False)

    def reveal(self, widget) -> None:
        """Scroll ``widget`` (a message) to the top of the view and stop following the end."""
        self._stick = False
        self.call_after_refresh(self.scroll_to_widget, widget, animate=False, top=True)

    def watch_virtual_size(self, _old, _new) -> None:
        """Content grew or shrank (Textual builds a Markdown answer after mounting it, and a
        resize re-wraps lines): stay at the end unless the person scrolled away from it."""
        if self._stick:  # after the refresh that applies the new size, unless scrolled up by then
            self.call_after_refresh(self._follow_end)

    def _follow_end(self) -> None:
        if self._stick:
            self.scroll_end(animate=False, immediate=True)

    def watch_scroll_target_y(self, old_value: float, new_value: float) -> None:
        """Where a scroll is headed, set before its animation: a move up to above the end (a
        key, the wheel, the scrollbar, revealing a message) stops following the end.  (Textual
        calls a scroll's start `release_anchor`, but also for moves down: Down at the end.)"""
        if new_value < old_value and new_value < self.max_scroll_y:
            self._stick = False

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value > old_value and new_value >= self.max_scroll_y - 1:  # scrolled back down
            self._stick = True  # to the end: follow it again

    def action_scroll_end(self) -> None:
        """End: go to the end and follow it."""
        self._stick = True
        self.scroll_end(animate=False)

    async def add(self, widget) -> None:
        """Append a message widget (removing the empty hint), keep the window, follow the end."""
        for hint in self.query(".empty-hint"):
            await hint.remove()
        await self.mount(widget)
        await self._trim()
        self._stick = True
        self.scroll_end(animate=False)

    async def show_earlier(self) -> None:
        """Mount the previous `WINDOW_MESSAGES` messages above the ones shown."""
        if not self.earlier:
            return
        self._stick = False  # the person is reading back
        batch, self.earlier = self.earlier[-WINDOW_MESSAGES:], self.earlier[:-WINDOW_MESSAGES]
        shown = self._messages()
        await self.mount_all([self.message_widget(m) for m in batch], before=shown[0] if shown else None)
        await self._update_button()
        self.scroll_home(animate=False)

    def _messages(self) -> list:
        return [w for w in self.children if isinstance(w, (UserMessage, AssistantMessage)) or w.has_class("tool")]

    async def _trim(self) -> None:
        shown = self._messages()
        extra = shown[:max(0, len(shown) - WINDOW_MESSAGES)]
        if not extra:
            return
        self.earlier.extend(w.message for w in extra)
        await self.remove_children(extra)
        await self._update_button()

    async def _update_button(self) -> None:
        buttons = list(self.query(EarlierMessages))
        if not self.earlier:
            for b in buttons:
                if b.has_focus:  # not onto the next reasoning block, which Enter would open
                    self.focus()
                await b.remove()
        elif buttons:
            buttons[0].label = EarlierMessages.label_for(len(self.earlier))
        else:
            await self.mount(EarlierMessages(len(self.earlier)), before=0)

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        if isinstance(event.button, EarlierMessages):
            event.stop()
            await self.show_earlier()

    @property
    def at_end(self) -> bool:
        """True when scrolled to (within a line of) the bottom."""
        return self.scroll_y >= self.max_scroll_y - 1
