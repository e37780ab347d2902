"""The app's jobs around one message: send it (with its attachments), stream its answer
(`live_turn`), stop, regenerate, edit the last message, attach a file.

A mixin of `magimac.tui.app.MagimacApp`: it uses the app's ``history``, ``session``,
``conversation``, ``messages``, ``chat``, ``composer``, ``attachments``, ``status`` and ``pace``.
"""

from __future__ import annotations

import time
from pathlib import Path

from textual import work
from textual.widgets import Static

from magimac.session.turn import model_label
from magimac.text.history import Attachment
from magimac.tui.chat import AssistantMessage, UserMessage
from magimac.tui.citations import Citations, take_library_lines
from magimac.tui.composer import Composer
from magimac.tui.live_turn import LiveTurn, stream_turn
from magimac.tui.messages import Streamed, TurnDocuments
from magimac.tui.screens import AttachImage
from magimac.session.prompt_cache import conversation_owner
from magimac.tui.settings_screen import generation_settings

SAVE_INTERVAL_S = 1.0
"""Seconds between saves of the answer being streamed (its text and token counts)."""


def title_from(text: str) -> str:
    """A conversation title from its first message: the first line, at most 40 characters."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "New chat")
    return line if len(line) <= 40 else line[:39] + "…"


def parse_composer(text: str) -> tuple[str, list[str], list[str]]:
    """Split ``/image PATH`` and ``/file PATH`` lines from a message: returns (text, image
    paths, document paths, as typed)."""
    keep, found = [], {"/image": [], "/file": []}
    for line in text.splitlines():
        command, _, path = line.strip().partition(" ")
        if command in found and path.strip():
            found[command].append(path.strip())
        else:
            keep.append(line)
    return "\n".join(keep).strip(), found["/image"], found["/file"]



class Sending:
    """Sending messages and streaming their answers (mixed into the App; handlers go by their
``on_*`` names: Textual's ``@on`` registers only in classes of its own)."""

    def on_composer_page_scroll(self, event: Composer.PageScroll) -> None:
        """PageUp/PageDown while typing scroll the conversation (keys stay in the composer)."""
        if event.pages < 0:
            self.chat.scroll_page_up(animate=False)
        else:
            self.chat.scroll_page_down(animate=False)

    async def on_composer_submitted(self, event: Composer.Submitted) -> None:
        text, libraries = take_library_lines(event.text)
        if libraries and not self.use_libraries(libraries):
            return
        text, typed_images, typed_files = parse_composer(text)
        if libraries and not (text or typed_images or typed_files):
            self.composer.clear()
            return
        for raw in typed_images + typed_files:
            if not self.attachments.attach(Path(raw)):
                return
        if (typed_files or typed_images) and not text:  # attached: now type the question about it
            self.composer.clear()
            return
        if not text and self.attachments.empty:
            return
        if self.generating is not None:
            self.notify("Wait for the answer, or stop it with Esc", severity="warning")
            return
        if self.session is None:
            self.notify("No model loaded: see `magimac pull` (F1 for help)", severity="error")
            return
        if self.needs_consent():  # an online model: nothing goes out before the person agrees
            self.ask_consent(title_from(text or "Image"), lambda: self._send_composed(text))
            return
        await self._send_composed(text)

    async def _send_composed(self, text: str) -> None:
        self.composer.clear()
        await self.send(text, *self.attachments.take())

    async def send(self, text: str, images: list[Path] | None = None,
                   documents: list[Path] | None = None) -> None:
        """Add a user message (replacing the last one when editing) and generate an answer."""
        if self.conversation is None:
            self.conversation = self.history.new_conversation(title_from(text or "Image"), {})
        if self.editing_from is not None:
            self.history.delete_messages_from(self.conversation.id, self.editing_from)
            self.editing_from = None
            self.messages = self.history.messages(self.conversation.id)
            await self.chat.show(self.messages, self.empty_hint())
        atts = [Attachment("image", str(p)) for p in images or []]
        atts += [Attachment("document", str(p)) for p in documents or []]
        user = self.history.add_message(self.conversation.id, "user", text, attachments=atts)
        self.messages.append(user)
        self.attachments.drop_all()
        await self.chat.add(UserMessage(user))
        await self.refresh_sidebar()
        await self.generate()

    async def generate(self) -> None:
        """Answer the conversation's messages: stream into a new assistant message."""
        assert self.conversation is not None and self.session is not None
        settings = generation_settings(self.conversation.settings or {})
        settings.cache_owner = conversation_owner(self.conversation.id)
        run = self.session.turn([m.to_message() for m in self.messages], settings, self.turn_tools(),
                                libraries=(self.conversation.settings or {}).get("libraries", []))
        answer = self.history.add_message(self.conversation.id, "assistant", "", reasoning="")
        widget = AssistantMessage(answer, live=True)
        if self.loaded is not None and self.loaded.service:  # said from the first token on
            widget.show_source({"service": self.loaded.service, "model": model_label(self.loaded)})
        await self.chat.add(widget)
        widget.begin_stream()
        self.live = LiveTurn(answer, widget, run)
        self.generating = answer.id
        self.status.generating = True
        self._generate_worker(run, answer.id)

    @work(thread=True, group="generate")
    def _generate_worker(self, run, message_id: int) -> None:
        stream_turn(run, message_id, self.post_message, self.pace)

    async def on_turn_documents(self, message: TurnDocuments) -> None:
        """Show which passages of the attached documents the turn sends (kept with the answer)."""
        if self.live is None or message.message_id != self.live.id:
            return
        await self.live.widget.mount(Static(f"📄 {message.used.summary}", classes="attachment",
                                            markup=False), before=0)
        if message.used.report.get("libraries"):
            await self.live.widget.mount(Citations(message.used.report["passages"]), before=1)

    def use_libraries(self, names: list[str]) -> bool:
        """Search libraries ``names`` in this conversation from now on (kept in its settings);
        False (and a notice) when one does not exist."""
        from magimac.core.errors import MagimacError
        from magimac.text.library import store

        try:
            for name in names:
                store.open_index(name).close()
        except MagimacError as e:
            self.notify(str(e), severity="error")
            return False
        settings = dict(self.conversation.settings or {}) if self.conversation else {}
        settings["libraries"] = list(dict.fromkeys([*settings.get("libraries", []), *names]))
        self.save_settings(settings)
        self.notify(f"library {', '.join(names)}: its passages go with every message of this conversation")
        return True

    async def on_streamed(self, message: Streamed) -> None:
        live = self.live
        if live is None or message.message_id != live.id:
            return
        self.ui_updates += 1
        with self.batch_update():  # one repaint for the text and the status bar (the view
            await live.show(message, self.status)  # follows the end itself unless scrolled up)
        self.call_after_refresh(self.pace.painted, message.posted)  # next batch once this one is painted
        if message.chunk.done is not None:
            await self._finish(live, message)
        elif time.monotonic() - live.saved_at >= SAVE_INTERVAL_S:
            live.saved_at = time.monotonic()
            self.history.update_message(live.id, content=live.answer, reasoning=live.reasoning,
                                        stats=live.stats)

    async def _finish(self, live: LiveTurn, message: Streamed) -> None:
        self.live = None
        msg = live.finished(message.chunk)
        if live.run.tools is not None and live.run.tools.steps:
            await self.store_tool_rounds(live, msg)
        else:
            self.history.update_message(msg.id, content=msg.content, reasoning=msg.reasoning or "",
                                        stats=msg.stats, finish_reason=msg.finish_reason)
            self.messages.append(msg)
            await live.widget.finish(msg)
        self._update_context()
        self.status.generating = False
        self.generating = None  # last: waiting code sees a finished turn
        if msg.stats.get("cache_notice"):
            self.notify(msg.stats["cache_notice"], title="Prompt cache", severity="warning", timeout=15)
        if msg.finish_reason == "error":
            error = msg.stats.get("error") or "generation failed"
            self.notify(error, title="Engine", severity="error", timeout=15)

    def action_stop(self) -> None:
        """Esc: stop the answer being generated (kept as far as it got, marked stopped); else
        cancel an edit (with the attachments it brought back); else drop waiting attachments."""
        if self.live is not None:
            self.live.run.cancel()
        elif self.editing_from is not None:
            self.editing_from = None
            self.composer.clear()
            self.attachments.drop_all()
            self.notify("Edit cancelled")
        elif not self.attachments.empty:
            self.attachments.drop_all()
            self.notify("Attachments removed")

    async def action_regenerate(self) -> None:
        """Answer the last user message again (the previous answer is replaced)."""
        if self.generating is not None or not self.messages or self.session is None:
            return
        if self.needs_consent():
            self.ask_consent(title_from(self.messages[0].content), self.action_regenerate)
            return
        last = self.messages[-1]
        if last.role == "assistant" and len(self.messages) > 1 and self.messages[-2].role != "user":
            await self._drop_tool_rounds()  # the answer came after tool calls: drop them all
        elif last.role == "assistant":
            self.history.delete_messages_from(self.conversation.id, last.id)
            self.messages.pop()
            widgets = self.chat.query(AssistantMessage)
            if widgets:
                await widgets.last().remove()
        if self.messages and self.messages[-1].role == "user":
            await self.generate()

    async def _drop_tool_rounds(self) -> None:
        """Delete what followed the last user message (tool rounds and answer) and redraw."""
        i = max(i for i, m in enumerate(self.messages) if m.role == "user")
        self.history.delete_messages_from(self.conversation.id, self.messages[i + 1].id)
        del self.messages[i + 1:]
        await self.chat.show(self.messages, self.empty_hint())

    def action_edit_last(self) -> None:
        """Put the last user message back in the composer; sending replaces it and what follows."""
        if self.generating is not None:
            return
        last = next((m for m in reversed(self.messages) if m.role == "user"), None)
        if last is None:
            return
        self.editing_from = last.id
        self.attachments.drop_all()
        for a in last.attachments:
            self.attachments.attach(Path(a.path))
        self.composer.text = last.content
        self.composer.focus()
        self.notify("Editing your last message: Enter resends it, Esc cancels")

    def action_attach(self) -> None:
        def done(path: Path | None) -> None:
            if path is not None:
                self.attachments.attach(path)
            self.composer.focus()

        self.push_screen(AttachImage(), done)
