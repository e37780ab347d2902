"""The chat app: `magimac [--model NAME_OR_DIR]`.

Layout: sidebar (search + conversations) | conversation view over the attachments line and the
composer; a status bar at the bottom. The App holds what is app-wide: the model (a
`magimac.session.model.ChatSession`, loaded in a thread worker while the app stays usable),
the conversation shown, the keys and screens. Each job has its own module: conversations and
the sidebar (`conversations`), the answer being streamed (`live_turn`: the turn runs in a thread
worker that iterates the session's `TurnRun`, batches it and posts at most ~25 UI updates per
second), the attachments waiting for the next message (`attachments`), the messages workers
post (`messages`). The UI never imports MLX and never waits on the engine.

History is written as the answer streams (an assistant row first, its text and token counts
saved at most every `sending.SAVE_INTERVAL_S`), so Esc, a crash or a kill keeps the answer as far as
it got.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Iterable

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen

from magimac.core import paths, staging
from magimac.core.errors import MagimacError, one_line
from magimac.core.events import EngineError, Loaded, LoadProgress
from magimac.models.online import RetiredModel
from magimac.models.store import DEMO_SCOPE, UnknownModel
from magimac.session.model import ChatSession, ModelChoice, choose_model, open_model
from magimac.session.turn import model_label
from magimac.text.export import write_export
from magimac.text.history import History, StoredMessage
from magimac.tui.attachments import PendingAttachments
from magimac.tui.chat import AssistantMessage, ChatView, code_blocks
from magimac.tui.composer import Composer
from magimac.tui.controls import DropControls
from magimac.tui.conversations import Conversations
from magimac.tui.live_turn import LiveTurn, Pace
from magimac.tui.messages import LoadEvent
from magimac.tui.online import OnlineChat
from magimac.tui.screens import HelpScreen, MissingModel
from magimac.tui.sending import Sending
from magimac.tui.settings_screen import SettingsScreen
from magimac.tui.sidebar import Sidebar
from magimac.tui.status_bar import StatusBar
from magimac.tui.tool_use import AppTools

KEYS_HINT = ("Enter sends · Ctrl+J new line · F3, or a line /image PATH or /file PATH, attaches an "
             "image or a document · F8 reasoning off/on · F1 help · Ctrl+P all commands")
EMPTY_HINT = f"Ask Magistral anything. {KEYS_HINT}"
DEMO_HINT = (f"This is the bundled demo, not Magistral: {DEMO_SCOPE}; ask it something like "
             "“What is 45 + 27?”, “How many mL in 3 L?” or “What is 347 x 29?”. To chat with Magistral: `magimac plan` "
             f"says what fits this Mac, `magimac pull magistral-small-2509` gets it. {KEYS_HINT}")

# (title, help, action): the command palette's entries beyond Textual's own
COMMANDS = [
    ("Stop answer", "Stop generating (Esc); the partial answer is kept", "stop"),
    ("Regenerate answer", "Answer the last message again (Ctrl+R)", "regenerate"),
    ("Edit last message", "Edit and resend your last message (Ctrl+L)", "edit_last"),
    ("Toggle reasoning", "Open or fold the last answer's reasoning (Ctrl+T)", "toggle_reasoning"),
    ("Reasoning on/off", "Turn this conversation's reasoning off or on again (F8)", "switch_reasoning"),
    ("Copy answer", "Copy the last answer to the clipboard (F5)", "copy_answer"),
    ("Copy code block", "Copy the last answer's last code block (F6)", "copy_code"),
    ("Export conversation", "Write the conversation as Markdown (Ctrl+S)", "export"),
    ("New conversation", "Start a new conversation (Ctrl+N)", "new_conversation"),
    ("Rename conversation", "Rename this conversation (F4)", "rename"),
    ("Delete conversation", "Delete this conversation", "delete"),
    ("Search conversations", "Full-text search of all messages (Ctrl+F)", "search"),
    ("Toggle sidebar", "Show or hide the conversation list (Ctrl+B)", "toggle_sidebar"),
    ("Conversation settings", "Model, system prompt, sampling, reasoning (F2)", "settings"),
    ("Attach file", "Attach an image or a document to the next message (F3)", "attach"),
    ("Help", "Keys and actions (F1)", "help"),
]


DROP_CONTROLS = DropControls()


class MagimacApp(Conversations, Sending, OnlineChat, AppTools, App):
    """The magimac chat app.

    Args:
        model: ``--model`` (registry name, hub id or directory); None: the default installed.
        history: an open `History` (default: the one in the data directory).
        export_dir: where exports are written (default: `magimac.core.paths.exports_dir`,
            ``<data dir>/exports``).
        engine_factory: ``f(path) -> engine`` returning an already started engine for a model
            directory (tests and benchmarks pass one to share a loaded engine, or a
            `magimac.testing.fake_engine.FakeEngine`; the app then neither starts nor closes
            it); default: the session layer builds, starts and closes `Engine(path)`.

    Attributes:
        session: the opened model (None: none chosen yet, or none found). loaded: its `Loaded`
            event once loaded. live: the answer being streamed (None between turns).
        generating: the history id of the answer being streamed (None between turns).
        ui_updates: `Streamed` batches applied (benchmarks read it).
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
        Binding("f8", "switch_reasoning", "Reasoning on/off", show=False),
    ]

    def get_line_filters(self):
        """Textual's line filters, then `DropControls`: no control character of a model's,
        tool's or document's text reaches the terminal."""
        return [*super().get_line_filters(), DROP_CONTROLS]

    def __init__(self, model: str | None = None, *, history: History | None = None,
                 export_dir: Path | None = None, engine_factory=None, server: str | None = None,
                 no_server: bool = False) -> None:
        super().__init__()
        self.model_arg = model
        self.server, self.no_server = server, no_server  # `--server URL` / `--no-server`
        self._owns_history = history is None  # one passed in stays the caller's to close
        self.history = history or History()
        self.export_dir = export_dir
        self.engine_factory = engine_factory
        self._owns_engine = engine_factory is None
        self.session: ChatSession | None = None
        self.loaded: Loaded | None = None
        self.conversation = None
        self.messages: list[StoredMessage] = []
        self.editing_from: int | None = None
        self.generating: int | None = None
        self.live: LiveTurn | None = None
        self.ui_updates = 0
        self.pace = Pace()

    # layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        # Kept as attributes (not queried): timers and late worker messages may touch them
        # while the app shuts down.
        self.sidebar = Sidebar(id="sidebar")
        self.chat = ChatView(id="chat")
        self.attachments = PendingAttachments(id="attachments")
        self.composer = Composer(id="composer", placeholder="Message (Enter sends, Ctrl+J new line)")
        self.status = StatusBar(id="status")
        with Horizontal(id="main"):
            yield self.sidebar
            with Vertical(id="right"):
                yield self.chat
                yield self.attachments
                yield self.composer
        yield self.status

    async def on_mount(self) -> None:
        self.fit_sidebar(self.size.width)
        self.start_engine(self.model_arg)
        self.start_mcp()
        convs = self.history.conversations()
        if convs:
            await self.open_conversation(convs[0].id)
        else:
            await self.chat.show([], self.empty_hint())
            await self.refresh_sidebar()
        self.composer.focus()
        self.screen_change_signal.subscribe(self, self._screen_changed)
        self.memory_timer = self.set_interval(2.0, self._update_memory)
        self._update_memory()

    def _screen_changed(self, screen: Screen) -> None:
        """A dialog or screen closed and the chat is shown again: the keys go to the message box
        (wherever the focus was when it opened)."""
        if screen is self.screen_stack[0]:
            self.composer.focus()

    def _update_memory(self) -> None:
        import psutil  # noqa: PLC0415

        self.status.memory_bytes = psutil.Process().memory_info().rss

    def empty_hint(self) -> str:
        """What an empty conversation says: the keys, and what the model can do."""
        return DEMO_HINT if self.session is not None and self.session.choice.is_demo else EMPTY_HINT

    # model ------------------------------------------------------------------------------
    def start_engine(self, model: str | None) -> None:
        """Resolve ``model`` and load it in the background; a missing or unknown model opens
        `MissingModel` (the app stays open for reading history).  With ``--server URL`` the
        model is that server's (``model``: the served id to ask for); else a server on the
        default port that serves ``model`` is used instead of a second copy of the weights
        (`magimac.session.remote.server_for`), unless ``--no-server``."""
        try:
            choice = ModelChoice(Path(model or self.server)) if self.server else choose_model(model)
        except RetiredModel as e:  # an online model the API no longer serves: offer its successor
            self.offer_successor(e)
            return
        except MagimacError as e:  # ModelNotFound, registry errors: explain, don't crash
            self.status.model = "no model"
            problem = str(e)
            self.push_screen(MissingModel(problem, unknown_name=isinstance(e, UnknownModel)))
            return
        if self.session is not None and (self.session.path, self.session.choice.online) == (choice.path, choice.online):
            return
        if choice.notice:
            self.notify(choice.notice, timeout=10)
        self._close_session()
        self.loaded = None
        self.status.model = choice.name
        self.status.service = ""
        self.status.load_state = "loading…"
        factory = self.engine_factory and (lambda path, **_options: self.engine_factory(path))
        owns = self._owns_engine or choice.online is not None  # an online engine is always the app's
        try:
            self.session = open_model(model if self.server else None, choice=choice, engine_factory=factory,
                                      start=owns, owns_engine=owns, server=self.server,
                                      find_server=not self.no_server, notice=self._server_notice)
        except Exception as e:  # a broken directory, an engine that refuses it
            self.status.load_state = "load failed"
            self.notify(f"cannot load {choice.path}: {e}", severity="error", timeout=10)
            return
        self.attachments.session = self.session
        self._load_worker(self.session)

    def _server_notice(self, line: str) -> None:
        """A server was found, or one was ignored since it could not prove it is the person's own."""
        warning = "could not prove" in line
        self.notify(line, severity="warning" if warning else "information", timeout=15 if warning else 10)

    def _close_session(self) -> None:
        session, self.session = self.session, None
        self.attachments.session = None
        if session is not None:
            try:
                session.close()
            except Exception:
                pass

    @work(thread=True, group="load", exclusive=True)
    def _load_worker(self, session: ChatSession) -> None:
        try:
            for ev in session.load_events():
                self.post_message(LoadEvent(ev))
        except Exception as e:  # the engine reports errors as events; anything else too
            self.post_message(LoadEvent(EngineError(one_line(e))))

    def on_load_event(self, message: LoadEvent) -> None:
        ev = message.event
        if isinstance(ev, LoadProgress):
            self.status.load_state = f"loading {ev.fraction:.0%}"
        elif isinstance(ev, Loaded):
            self.loaded = ev
            self.status.model = model_label(ev)
            self.status.service = ev.service
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
            self.status.disk_tokens = 0
            return
        s = last.stats
        self.status.context_used = int(s.get("prompt_tokens", 0)) + int(s.get("reasoning_tokens", 0)) \
            + int(s.get("answer_tokens", 0))
        self.status.ttft_s = s.get("ttft_s")
        self.status.tokens_per_s = s.get("decode_tps")
        self.status.disk_tokens = int(s.get("disk_tokens") or 0)

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
        directory = self.export_dir or paths.exports_dir()
        try:
            model = model_label(self.loaded) if self.loaded else (self.conversation.settings or {}).get("model")
            staging.make_dirs(directory, "set MAGIMAC_DATA_DIR to a folder you can write")
            path = write_export(directory, self.conversation, self.history.messages(self.conversation.id), model)
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
            if self.save_settings(settings):
                await self.refresh_sidebar()
            self.start_engine(settings.get("model") or self.model_arg)
            self.notify("Settings saved")

        hint = self.session.choice.name if self.session else "the default model"
        self.push_screen(SettingsScreen(current, hint, self.mcp_specs()), done)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, action in COMMANDS:
            yield SystemCommand(title, help_text, getattr(self, f"action_{action}"))

    async def on_unmount(self) -> None:
        live, self.live = self.live, None
        if live is not None:  # closed while an answer streams: keep it as far as it got
            live.run.cancel()
            self.history.update_message(live.id, content=live.answer, reasoning=live.reasoning,
                                        stats=live.stats, finish_reason="cancelled")
        self._close_session()
        self.close_mcp()
        if self._owns_history:  # checkpoints the WAL: history.db alone then holds the history
            self.history.close()


def run(args) -> int:
    """`magimac [--model NAME_OR_DIR]`: run the app; returns the exit code."""
    app = MagimacApp(getattr(args, "model", None), server=getattr(args, "server", None),
                     no_server=getattr(args, "no_server", False))
    app.run()
    return int(app.return_code or 0)
