"""The chat app: `magimac [--model NAME_OR_DIR]`.

Layout: sidebar (search + conversations) | conversation view over the composer; a status
bar at the bottom. The model loads in a thread worker while the app stays usable; each turn
runs in a thread worker that iterates the engine's events, batches them (`streaming`) and
posts at most ~25 UI updates per second. The UI never imports MLX.

History is written as the answer streams (an assistant row first, its text saved at most
every `SAVE_INTERVAL_S`), so Esc, a crash or a kill keeps the answer as far as it got.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
from pathlib import Path
from typing import Iterable

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from magimac.models import store
from magimac.engine.worker import Engine, EngineLoadError
from magimac.core.events import Done, EngineError, Loaded, LoadProgress, Stats
from magimac.text.documents import DocumentError, describe, load_document_cached
from magimac.text.history import Attachment, ConversationInfo, History, StoredMessage
from magimac.text.retrieval import attach_for_engine, context_report, context_summary
from magimac.tui.chat import AssistantMessage, ChatView, UserMessage, code_blocks
from magimac.tui.composer import Composer
from magimac.text.export import write_export
from magimac.tui.screens import IMAGE_SUFFIXES, AttachImage, Confirm, HelpScreen, MissingModel, TextPrompt
from magimac.tui.settings_screen import SettingsScreen, generation_settings
from magimac.tui.sidebar import Sidebar
from magimac.tui.status_bar import StatusBar
from magimac.tui.streaming import Chunk, DeltaBatcher

SAVE_INTERVAL_S = 1.0
EMPTY_HINT = ("Ask Magistral anything. Enter sends · Ctrl+J new line · F3, or a line /image PATH "
              "or /file PATH, attaches an image or a document · F1 help · Ctrl+P all commands")


class LoadEvent(Message):
    """A model-loading event from the load worker."""

    def __init__(self, event: LoadProgress | Loaded | EngineError) -> None:
        super().__init__()
        self.event = event


class DocumentsUsed(Message):
    """What of the attached documents a turn sends (`retrieval.Context`), from the worker."""

    def __init__(self, message_id: int, context) -> None:
        super().__init__()
        self.message_id = message_id
        self.context = context


class TokensCounted(Message):
    """An attached document's token count (None: no tokenizer), from the counting worker."""

    def __init__(self, path: Path, document, tokens: int | None) -> None:
        super().__init__()
        self.path = path
        self.document = document
        self.tokens = tokens


class Streamed(Message):
    """A batch of a turn's output from the generation worker."""

    def __init__(self, message_id: int, chunk: Chunk) -> None:
        super().__init__()
        self.message_id = message_id
        self.chunk = chunk
        self.posted = time.monotonic()


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


def model_label(loaded: Loaded) -> str:
    """A loaded model as the status bar and exports name it: ``Magistral Small 1.2 · 4bit``."""
    return f"{loaded.model} · {loaded.quantization}" if loaded.quantization else loaded.model


def plan_recommendations() -> list[str]:
    """What `magimac plan` recommends for this machine (default model), as lines; [] when the
    planner cannot say (it must never stop the app from explaining how to get a model)."""
    try:
        from magimac.models.plan import make_plan  # noqa: PLC0415

        rec = make_plan().recommendation
    except Exception:
        return []
    if rec is None:
        return ["`magimac plan` finds no quantization of the default model that fits this machine."]
    return [f"`{rec.pull_command}`: {rec.reason}",
            f"weights {rec.weights_bytes / 1e9:.1f} GB + KV cache {rec.kv_bytes / 1e9:.1f} GB "
            f"for {rec.context} tokens at {rec.kv_bits}-bit KV"]


class MagimacApp(App):
    """The magimac chat app.

    Args:
        model: ``--model`` (registry name, hub id or directory); None: the default installed.
        history: an open `History` (default: the one in the data directory).
        export_dir: where exports are written (default: the current directory).
        engine_factory: returns an already started engine for a model directory (tests and
            benchmarks pass one to share a loaded engine; the app then neither starts nor
            closes it); default: the app builds, starts and closes `Engine(path)`.
    """

    CSS_PATH = "app.tcss"
    TITLE = "magimac"
    BINDINGS = [
        Binding("escape", "stop", "Stop", show=False),
        Binding("ctrl+r", "regenerate", "Regenerate", show=False),
        Binding("ctrl+l", "edit_last", "Edit last", show=False),
        Binding("ctrl+t", "toggle_reasoning", "Reasoning", show=False),
        Binding("f5", "copy_answer", "Copy answer", show=False),
        Binding("f6", "copy_code", "Copy code", show=False),
        Binding("ctrl+s", "export", "Export", show=False),
        Binding("ctrl+n", "new_conversation", "New", show=False),
        Binding("ctrl+b", "toggle_sidebar", "Sidebar", show=False),
        Binding("ctrl+f", "search", "Search", show=False),
        Binding("f1", "help", "Help", show=False),
        Binding("f2", "settings", "Settings", show=False),
        Binding("f3", "attach", "Attach", show=False),
        Binding("f4", "rename", "Rename", show=False),
    ]

    def __init__(self, model: str | None = None, *, history: History | None = None,
                 export_dir: Path | None = None, engine_factory=None) -> None:
        super().__init__()
        self.model_arg = model
        self.history = history or History()
        self.export_dir = export_dir
        self.engine_factory = engine_factory or (lambda path: Engine(path))
        self._owns_engine = engine_factory is None
        self.engine = None
        self.engine_model: str | None = None  # what the running engine was built from
        self.loaded: Loaded | None = None
        self.conversation: ConversationInfo | None = None
        self.messages: list[StoredMessage] = []
        self.pending_images: list[Path] = []
        self.pending_documents: dict[Path, str] = {}  # path -> "name (kind, pages, tokens)"
        self.editing_from: int | None = None
        self.generating: int | None = None  # id of the assistant message being streamed
        self._live: dict = {}  # streaming state of the current turn
        self.ui_updates = 0  # Streamed batches applied (benchmarks read it)
        self._ui_ready = threading.Event()  # set when the UI painted the last batch
        self._ui_cost = 0.0  # seconds the UI took to apply and paint the last batch

    # layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        # Kept as attributes (not queried): timers and late worker messages may touch them
        # while the app shuts down.
        self.sidebar = Sidebar(id="sidebar")
        self.chat = ChatView(id="chat")
        self.composer = Composer(id="composer", placeholder="Message (Enter sends, Ctrl+J new line)")
        self.status = StatusBar(id="status")
        with Horizontal(id="main"):
            yield self.sidebar
            with Vertical(id="right"):
                yield self.chat
                yield Static("", id="attachments", markup=False)
                yield self.composer
        yield self.status

    async def on_mount(self) -> None:
        self.query_one("#attachments").display = False
        convs = self.history.conversations()
        if convs:
            await self.open_conversation(convs[0].id)
        else:
            await self.chat.show([], EMPTY_HINT)
            await self.refresh_sidebar()
        self.composer.focus()
        self.memory_timer = self.set_interval(2.0, self._update_memory)
        self._update_memory()
        self.start_engine(self.model_arg)

    def _update_memory(self) -> None:
        import psutil  # noqa: PLC0415

        self.status.memory_bytes = psutil.Process().memory_info().rss

    # engine -----------------------------------------------------------------------------
    def start_engine(self, model: str | None) -> None:
        """Resolve ``model`` and load it in the background; a missing model opens `MissingModel`."""
        try:
            path = store.resolve_model(model)
        except (store.ModelNotFound, Exception) as e:  # registry errors too: explain, don't crash
            self.status.model = "no model"
            self.push_screen(MissingModel(str(e), plan_recommendations()))
            return
        if self.engine is not None and self.engine_model == str(path):
            return
        if notice := store.demo_notice(model, path):
            self.notify(notice, timeout=10)
        self._close_engine()
        self.loaded = None
        self.engine_model = str(path)
        self.status.model = path.name
        self.status.load_state = "loading…"
        try:
            self.engine = self.engine_factory(path)
            if self._owns_engine:
                self.engine.start()
        except Exception as e:
            self.engine = None
            self.status.load_state = "load failed"
            self.notify(f"cannot load {path}: {e}", severity="error", timeout=10)
            return
        self._load_worker(self.engine)

    def _close_engine(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None and self._owns_engine:
            try:
                engine.close()
            except Exception:
                pass

    @work(thread=True, group="load", exclusive=True)
    def _load_worker(self, engine) -> None:
        try:
            for ev in engine.load_events():
                self.post_message(LoadEvent(ev))
        except Exception as e:  # the engine reports errors as events; anything else too
            self.post_message(LoadEvent(EngineError(str(e) or type(e).__name__)))

    def on_load_event(self, message: LoadEvent) -> None:
        ev = message.event
        if isinstance(ev, LoadProgress):
            self.status.load_state = f"loading {ev.fraction:.0%}"
        elif isinstance(ev, Loaded):
            self.loaded = ev
            self.status.model = model_label(ev)
            self.status.load_state = ""
            self.status.context_limit = ev.context_length
            self._update_context()
            # Everything loaded so far (libraries, the tokenizer's tables) lives as long as the
            # app: keep it out of the garbage collector's full passes, which otherwise pause
            # the UI for ~0.24 s each (measured in bench/bench_tui.py, 131K-token vocabulary).
            # Unfrozen and collected first, once per load: garbage from before (a replaced
            # engine in a reference cycle, frozen with the previous model) is freed, not kept.
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        elif isinstance(ev, EngineError):
            self.status.load_state = "load failed"
            self.notify(ev.message, title="Model", severity="error", timeout=15)

    def _update_context(self) -> None:
        last = next((m for m in reversed(self.messages)  # a failed turn's numbers are zeros
                     if m.role == "assistant" and m.stats and m.finish_reason != "error"), None)
        if last is None:
            self.status.context_used = 0
            self.status.ttft_s = self.status.tokens_per_s = None
            return
        s = last.stats
        self.status.context_used = int(s.get("prompt_tokens", 0)) + int(s.get("reasoning_tokens", 0)) \
            + int(s.get("answer_tokens", 0))
        self.status.ttft_s = s.get("ttft_s")
        self.status.tokens_per_s = s.get("decode_tps")

    # conversations ----------------------------------------------------------------------
    async def refresh_sidebar(self) -> None:
        search = self.sidebar.query_one("#search").value
        if search.strip():
            await self.sidebar.show_hits(self.history.search(search))
        else:
            await self.sidebar.show_conversations(self.history.conversations(),
                                                  self.conversation.id if self.conversation else None)

    async def open_conversation(self, conversation_id: int, message_id: int | None = None) -> None:
        """Show a conversation from history (and load its model if it names another);
        ``message_id`` (a search hit): page back until that message is shown, scrolled to."""
        if self.generating is not None:
            self.notify("Stop the answer first (Esc)", severity="warning")
            return
        self.conversation = self.history.conversation(conversation_id)
        self.messages = self.history.messages(conversation_id)
        self.editing_from = None
        await self.chat.show(self.messages, EMPTY_HINT)
        if message_id is not None:
            await self._reveal(message_id)
        await self.refresh_sidebar()
        self._update_context()
        if self.engine_model is not None:  # a conversation may name its own model
            self.start_engine((self.conversation.settings or {}).get("model") or self.model_arg)

    async def _reveal(self, message_id: int) -> None:
        """Mount earlier messages until ``message_id`` is shown, then scroll it into view."""
        while any(m.id == message_id for m in self.chat.earlier):
            await self.chat.show_earlier()
        widget = next((w for w in self.chat.query(".message") if w.message.id == message_id), None)
        if widget is not None:
            self.chat.reveal(widget)

    async def action_new_conversation(self) -> None:
        """Start an empty conversation (created in history on its first message)."""
        if self.generating is not None:
            self.notify("Stop the answer first (Esc)", severity="warning")
            return
        self.conversation = None
        self.messages = []
        self.editing_from = None
        await self.chat.show([], EMPTY_HINT)
        await self.refresh_sidebar()
        self._update_context()
        self.composer.focus()

    @on(Sidebar.Open)
    async def _sidebar_open(self, event: Sidebar.Open) -> None:
        await self.open_conversation(event.conversation_id, event.message_id)
        self.composer.focus()

    @on(Sidebar.Search)
    async def _sidebar_search(self, event: Sidebar.Search) -> None:
        await self.refresh_sidebar()

    @on(Sidebar.Action)
    def _sidebar_action(self, event: Sidebar.Action) -> None:
        if event.action == "rename":
            self._rename(event.conversation_id)
        else:
            self._delete(event.conversation_id)

    def action_rename(self) -> None:
        if self.conversation is not None:
            self._rename(self.conversation.id)

    def _rename(self, conversation_id: int) -> None:
        conv = self.history.conversation(conversation_id)

        async def done(title: str | None) -> None:
            if title:
                self.history.rename(conversation_id, title)
                if self.conversation and self.conversation.id == conversation_id:
                    self.conversation.title = title
                await self.refresh_sidebar()

        self.push_screen(TextPrompt("Rename conversation", conv.title if conv else ""), done)

    def action_delete(self) -> None:
        if self.conversation is not None:
            self._delete(self.conversation.id)

    def _delete(self, conversation_id: int) -> None:
        conv = self.history.conversation(conversation_id)
        if conv is None:
            return

        async def done(yes: bool | None) -> None:
            if not yes:
                return
            if self.generating is not None and self.conversation and self.conversation.id == conversation_id:
                self.notify("Stop the answer first (Esc)", severity="warning")
                return
            self.history.delete(conversation_id)
            if self.conversation and self.conversation.id == conversation_id:
                await self.action_new_conversation()
            else:
                await self.refresh_sidebar()

        self.push_screen(Confirm(f"Delete “{conv.title}” and all its messages?"), done)

    def action_toggle_sidebar(self) -> None:
        self.sidebar.display = not self.sidebar.display
        if not self.sidebar.display and self.focused is not None and self.sidebar in self.focused.ancestors:
            self.composer.focus()  # typing must not go on in a hidden search box

    def action_search(self) -> None:
        self.sidebar.display = True
        self.sidebar.query_one("#search").focus()

    # sending ----------------------------------------------------------------------------
    @on(Composer.PageScroll)
    def _page_scroll(self, event: Composer.PageScroll) -> None:
        """PageUp/PageDown while typing scroll the conversation (keys stay in the composer)."""
        if event.pages < 0:
            self.chat.scroll_page_up(animate=False)
        else:
            self.chat.scroll_page_down(animate=False)

    @on(Composer.Submitted)
    async def _submitted(self, event: Composer.Submitted) -> None:
        text, typed_images, typed_files = parse_composer(event.text)
        for raw in typed_images + typed_files:
            if not self._attach(Path(raw)):
                return
        if (typed_files or typed_images) and not text:  # attached: now type the question about it
            self.composer.clear()
            return
        if not text and not self.pending_images and not self.pending_documents:
            return
        if self.generating is not None:
            self.notify("Wait for the answer, or stop it with Esc", severity="warning")
            return
        if self.engine is None:
            self.notify("No model loaded: see `magimac pull` (F1 for help)", severity="error")
            return
        self.composer.clear()
        await self.send(text, list(self.pending_images), list(self.pending_documents))

    async def send(self, text: str, images: list[Path] | None = None,
                   documents: list[Path] | None = None) -> None:
        """Add a user message (replacing the last one when editing) and generate an answer."""
        if self.conversation is None:
            self.conversation = self.history.new_conversation(title_from(text or "Image"), {})
        if self.editing_from is not None:
            self.history.delete_messages_from(self.conversation.id, self.editing_from)
            self.editing_from = None
            self.messages = self.history.messages(self.conversation.id)
            await self.chat.show(self.messages, EMPTY_HINT)
        atts = [Attachment("image", str(p)) for p in images or []]
        atts += [Attachment("document", str(p)) for p in documents or []]
        user = self.history.add_message(self.conversation.id, "user", text, attachments=atts)
        self.messages.append(user)
        self._drop_pending()
        await self.chat.add(UserMessage(user))
        await self.refresh_sidebar()
        await self.generate()

    async def generate(self) -> None:
        """Answer the conversation's messages: stream into a new assistant message."""
        assert self.conversation is not None
        prompt = [m.to_message() for m in self.messages]
        answer = self.history.add_message(self.conversation.id, "assistant", "", reasoning="")
        widget = AssistantMessage(answer, live=True)
        await self.chat.add(widget)
        widget.begin_stream()
        self.generating = answer.id
        self._live = {"widget": widget, "message": answer, "reasoning": "", "answer": "",
                      "saved": time.monotonic(), "chunk": None}
        self.status.generating = True
        settings = generation_settings(self.conversation.settings or {})
        self._generate_worker(self.engine, answer.id, prompt, settings)

    @work(thread=True, group="generate")
    def _generate_worker(self, engine, message_id: int, prompt, settings) -> None:
        batcher = DeltaBatcher()
        ready = self._ui_ready
        ready.set()
        self._ui_cost = 0.0
        posted = 0.0
        try:
            engine.wait_loaded()
            prompt, documents = attach_for_engine(engine, prompt, settings)
            if documents.passages or any(m.documents for m in prompt):
                self.post_message(DocumentsUsed(message_id, documents))
            for ev in engine.submit(prompt, settings):
                # Backpressure: a new batch only once the UI painted the previous one, and
                # not before as long again has passed, so a slow UI (a long answer) gets
                # fewer, larger batches and stays idle at least half the time for keys.
                due = batcher.add(ev)
                if isinstance(ev, Done) or (due and ready.is_set()
                                            and time.monotonic() - posted >= 2 * self._ui_cost):
                    ready.clear()
                    message = Streamed(message_id, batcher.take())
                    posted = message.posted
                    self.post_message(message)
                if isinstance(ev, Done):
                    return
            batcher.add(Done("error", "the engine ended the turn without finishing it"))
        except (EngineLoadError, DocumentError) as e:
            batcher.add(Done("error", str(e)))
        except Exception as e:  # engine errors become notifications, never crashes
            batcher.add(Done("error", f"{type(e).__name__}: {e}"))
        self.post_message(Streamed(message_id, batcher.take()))

    async def on_documents_used(self, message: DocumentsUsed) -> None:
        """Show which passages of the attached documents the turn sends; kept with the answer."""
        live = self._live
        if message.message_id != self.generating or not live:
            return
        report = context_report(message.context)
        for p in report["passages"]:
            p.pop("text", None)
        live["documents"] = {"summary": context_summary(message.context), "passages": report["passages"]}
        await live["widget"].mount(Static(f"📄 {live['documents']['summary']}", classes="attachment",
                                          markup=False), before=0)

    async def on_streamed(self, message: Streamed) -> None:
        live = self._live
        if message.message_id != self.generating or not live:
            return
        chunk = message.chunk
        self.ui_updates += 1
        live["reasoning"] += chunk.reasoning
        live["answer"] += chunk.answer
        live["chunk"] = chunk
        with self.batch_update():  # one repaint for the text and the status bar (the view
            await live["widget"].add(chunk)  # follows the end itself unless scrolled up)
            if chunk.stats is not None:
                live["stats"] = chunk.stats
            if chunk.ttft_s is not None and (chunk.elapsed_s - live.get("status_at", -1.0) >= 0.5):
                live["status_at"] = chunk.elapsed_s  # live TTFT and tokens/s, twice a second
                self.status.ttft_s = chunk.ttft_s
                n, dt = chunk.reasoning_tokens + chunk.answer_tokens, chunk.elapsed_s - chunk.ttft_s
                if n > 1 and dt > 0:
                    self.status.tokens_per_s = (n - 1) / dt
        self.call_after_refresh(self._painted, message.posted)  # next batch once this one is painted
        if chunk.done is not None:
            await self._finish(chunk)
        elif time.monotonic() - live["saved"] >= SAVE_INTERVAL_S:
            live["saved"] = time.monotonic()
            self.history.update_message(message.message_id, content=live["answer"], reasoning=live["reasoning"])

    def _painted(self, posted: float) -> None:
        self._ui_cost = time.monotonic() - posted  # seconds from post to painted
        self._ui_ready.set()

    async def _finish(self, chunk: Chunk) -> None:
        live, self._live = self._live, {}
        done = chunk.done
        final = done.stats if done.stats != Stats() else live.get("stats") or done.stats
        stats = dataclasses.asdict(final)
        if not stats.get("reasoning_tokens"):
            stats["reasoning_tokens"] = chunk.reasoning_tokens
        if not stats.get("answer_tokens"):
            stats["answer_tokens"] = chunk.answer_tokens
        if chunk.thinking_s is not None:
            stats["thinking_s"] = round(chunk.thinking_s, 2)
        elif live["reasoning"]:
            stats["thinking_s"] = round(chunk.elapsed_s - (chunk.ttft_s or 0.0), 2)
        if done.error:
            stats["error"] = done.error
        if live.get("documents"):
            stats["documents"] = live["documents"]
        if self.loaded is not None:  # the model that answered, for exports
            stats["model"] = model_label(self.loaded)
        msg: StoredMessage = live["message"]
        msg.content, msg.reasoning = live["answer"], live["reasoning"] or None
        msg.stats, msg.finish_reason = stats, done.finish_reason
        self.history.update_message(msg.id, content=msg.content, reasoning=live["reasoning"],
                                    stats=stats, finish_reason=done.finish_reason)
        self.messages.append(msg)
        await live["widget"].finish(msg)
        self._update_context()
        self.status.generating = False
        self.generating = None  # last: waiting code sees a finished turn
        if done.finish_reason == "error":
            self.notify(done.error or "generation failed", title="Engine", severity="error", timeout=15)

    def action_stop(self) -> None:
        """Esc: stop the answer being generated (kept as far as it got, marked stopped); else
        cancel an edit (with the attachments it brought back); else drop waiting attachments."""
        if self.generating is not None and self.engine is not None:
            self.engine.cancel()
        elif self.editing_from is not None:
            self.editing_from = None
            self.composer.clear()
            self._drop_pending()
            self.notify("Edit cancelled")
        elif self.pending_images or self.pending_documents:
            self._drop_pending()
            self.notify("Attachments removed")

    def _drop_pending(self) -> None:
        self.pending_images.clear()
        self.pending_documents.clear()
        self._show_pending()

    async def action_regenerate(self) -> None:
        """Answer the last user message again (the previous answer is replaced)."""
        if self.generating is not None or not self.messages or self.engine is None:
            return
        last = self.messages[-1]
        if last.role == "assistant":
            self.history.delete_messages_from(self.conversation.id, last.id)
            self.messages.pop()
            widgets = self.chat.query(AssistantMessage)
            if widgets:
                await widgets.last().remove()
        if self.messages and self.messages[-1].role == "user":
            await self.generate()

    def action_edit_last(self) -> None:
        """Put the last user message back in the composer; sending replaces it and what follows."""
        if self.generating is not None:
            return
        last = next((m for m in reversed(self.messages) if m.role == "user"), None)
        if last is None:
            return
        self.editing_from = last.id
        self.pending_images = [Path(a.path) for a in last.attachments if a.kind == "image"]
        self.pending_documents = {}
        for a in last.attachments:
            if a.kind == "document":
                self._attach(Path(a.path))
        self._show_pending()
        self.composer.text = last.content
        self.composer.focus()
        self.notify("Editing your last message: Enter resends it, Esc cancels")

    # attachments ------------------------------------------------------------------------
    def _attach(self, path: Path) -> bool:
        path = path.expanduser()
        if not path.is_file():
            self.notify(f"{path}: no such file", severity="error")
            return False
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            return self._attach_document(path)
        try:  # refuse a broken image now, before it becomes part of the conversation
            from PIL import Image  # noqa: PLC0415

            with Image.open(path) as im:
                im.verify()
        except Exception as e:  # Pillow raises many types for unreadable files
            self.notify(f"{path.name}: not an image Pillow can read ({type(e).__name__})", severity="error")
            return False
        self.pending_images.append(path.resolve())
        self._show_pending()
        return True

    def _attach_document(self, path: Path) -> bool:
        """Read a document (`documents.load_document_cached`) and list it with its pages; its
        token count follows from a thread worker (a long document takes a while to tokenize).
        An unreadable one is refused with its one-line reason."""
        try:
            doc = load_document_cached(path)
        except DocumentError as e:
            self.notify(str(e), severity="error", timeout=10)
            return False
        path = path.resolve()
        if self.engine is None:
            self.pending_documents[path] = describe(doc)
        else:
            self.pending_documents[path] = f"{describe(doc)} · counting tokens…"
            self._count_worker(self.engine, path, doc)
        self._show_pending()
        return True

    @work(thread=True, group="count")
    def _count_worker(self, engine, path: Path, doc) -> None:
        try:
            tokens = engine.count_tokens(doc.text)
        except Exception:  # no tokenizer (model failed to load): the document without a count
            tokens = None
        self.post_message(TokensCounted(path, doc, tokens))

    def on_tokens_counted(self, message: TokensCounted) -> None:
        if message.path in self.pending_documents:  # not sent or removed meanwhile
            self.pending_documents[message.path] = describe(message.document, message.tokens)
            self._show_pending()

    def _show_pending(self) -> None:
        bar = self.query_one("#attachments", Static)
        bar.update("  ".join([f"📎 {p.name}" for p in self.pending_images]
                             + [f"📄 {label}" for label in self.pending_documents.values()]
                             + ["(Esc removes)"]))
        bar.display = bool(self.pending_images or self.pending_documents)

    def action_attach(self) -> None:
        def done(path: Path | None) -> None:
            if path is not None:
                self._attach(path)
            self.composer.focus()

        self.push_screen(AttachImage(), done)

    # copy, export, reasoning ------------------------------------------------------------
    def _last_answer(self) -> StoredMessage | None:
        return next((m for m in reversed(self.messages) if m.role == "assistant"), None)

    def action_copy_answer(self) -> None:
        if (m := self._last_answer()) is None:
            self.notify("No answer to copy yet", severity="warning")
            return
        self.copy_to_clipboard(m.content)
        self.notify("Answer copied")

    def action_copy_code(self) -> None:
        blocks = code_blocks(m.content) if (m := self._last_answer()) else []
        if not blocks:
            self.notify("No code block in the last answer", severity="warning")
            return
        self.copy_to_clipboard(blocks[-1])
        self.notify("Code block copied")

    def action_export(self) -> None:
        if self.conversation is None:
            self.notify("Nothing to export yet", severity="warning")
            return
        try:
            model = model_label(self.loaded) if self.loaded else (self.conversation.settings or {}).get("model")
            path = write_export(self.export_dir or Path.cwd(), self.conversation,
                                self.history.messages(self.conversation.id), model)
        except OSError as e:
            self.notify(f"export failed: {e}", severity="error")
            return
        self.notify(f"Exported to {path}", timeout=8)

    def action_toggle_reasoning(self) -> None:
        blocks = [w.reasoning for w in self.chat.query(AssistantMessage) if w.reasoning.display]
        if blocks:
            blocks[-1].collapsed = not blocks[-1].collapsed

    # screens ----------------------------------------------------------------------------
    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_settings(self) -> None:
        current = dict(self.conversation.settings) if self.conversation else {}

        async def done(settings: dict | None) -> None:
            if settings is None:
                return
            if self.conversation is None:
                self.conversation = self.history.new_conversation("New chat", settings)
                await self.refresh_sidebar()
            else:
                self.history.set_settings(self.conversation.id, settings)
                self.conversation.settings = settings
            self.start_engine(settings.get("model") or self.model_arg)
            self.notify("Settings saved")

        hint = Path(self.engine_model).name if self.engine_model else "the default model"
        self.push_screen(SettingsScreen(current, hint), done)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, action in (
            ("Stop answer", "Stop generating (Esc); the partial answer is kept", self.action_stop),
            ("Regenerate answer", "Answer the last message again (Ctrl+R)", self.action_regenerate),
            ("Edit last message", "Edit and resend your last message (Ctrl+L)", self.action_edit_last),
            ("Toggle reasoning", "Open or fold the last answer's reasoning (Ctrl+T)", self.action_toggle_reasoning),
            ("Copy answer", "Copy the last answer to the clipboard (F5)", self.action_copy_answer),
            ("Copy code block", "Copy the last answer's last code block (F6)", self.action_copy_code),
            ("Export conversation", "Write the conversation as Markdown (Ctrl+S)", self.action_export),
            ("New conversation", "Start a new conversation (Ctrl+N)", self.action_new_conversation),
            ("Rename conversation", "Rename this conversation (F4)", self.action_rename),
            ("Delete conversation", "Delete this conversation", self.action_delete),
            ("Search conversations", "Full-text search of all messages (Ctrl+F)", self.action_search),
            ("Toggle sidebar", "Show or hide the conversation list (Ctrl+B)", self.action_toggle_sidebar),
            ("Conversation settings", "Model, system prompt, sampling, reasoning (F2)", self.action_settings),
            ("Attach file", "Attach an image or a document to the next message (F3)", self.action_attach),
            ("Help", "Keys and actions (F1)", self.action_help),
        ):
            yield SystemCommand(title, help_text, action)

    async def on_unmount(self) -> None:
        if self.generating is not None and self.engine is not None:
            self.engine.cancel()
            live = self._live
            if live:
                self.history.update_message(live["message"].id, content=live["answer"],
                                            reasoning=live["reasoning"], finish_reason="cancelled")
        self._close_engine()


def run(args) -> int:
    """`magimac [--model NAME_OR_DIR]`: run the app; returns the exit code."""
    app = MagimacApp(getattr(args, "model", None))
    app.run()
    return int(app.return_code or 0)
