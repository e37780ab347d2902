"""The app's conversation jobs: open one from history, start a new one, rename, delete, search,
its settings (`save_settings`; F8 turns its reasoning off and on), and the sidebar that lists
them (hidden below `SIDEBAR_MIN_WIDTH` columns; Ctrl+B shows it).

A mixin of `magimac.tui.app.MagimacApp`: it uses the app's ``history``, ``chat``, ``sidebar``,
``composer``, ``conversation``, ``messages``, ``generating`` and ``editing_from``.
"""

from __future__ import annotations

from textual import events

from magimac.session.prompt_cache import forget_conversation
from magimac.tui.screens import Confirm, TextPrompt
from magimac.tui.sidebar import Sidebar

SIDEBAR_MIN_WIDTH = 70
"""Below this many terminal columns the sidebar folds away on its own (the conversation keeps
at least ~50 columns at 70); Ctrl+B brings it back."""
REASONING_KEY = "reasoning"
"""Settings key: False when the person turned reasoning off for the conversation (F8); the
turns then go with a reasoning budget of 0 (`magimac.tui.settings_screen.generation_settings`)."""


class Conversations:
    """Conversations and the sidebar (mixed into the App; handlers go by their ``on_*`` names:
Textual's ``@on`` registers only in classes of its own)."""

    _narrow: bool | None = None  # whether the terminal was below SIDEBAR_MIN_WIDTH when last sized

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
        await self.chat.show(self.messages, self.empty_hint())
        if message_id is not None:
            await self._reveal(message_id)
        await self.refresh_sidebar()
        self._update_context()
        self.show_reasoning_state()
        if self.session is not None:  # a conversation may name its own model
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
        await self.chat.show([], self.empty_hint())
        await self.refresh_sidebar()
        self._update_context()
        self.show_reasoning_state()
        self.composer.focus()

    async def on_sidebar_open(self, event: Sidebar.Open) -> None:
        await self.open_conversation(event.conversation_id, event.message_id)
        self.composer.focus()

    async def on_sidebar_search(self, event: Sidebar.Search) -> None:
        await self.refresh_sidebar()

    def on_sidebar_action(self, event: Sidebar.Action) -> None:
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
            forget_conversation(conversation_id)
            if self.conversation and self.conversation.id == conversation_id:
                await self.action_new_conversation()
            else:
                await self.refresh_sidebar()

        self.push_screen(Confirm(f"Delete “{conv.title}” and all its messages?"), done)

    def action_toggle_sidebar(self) -> None:
        self._show_sidebar(not self.sidebar.display)

    def action_search(self) -> None:
        self._show_sidebar(True)
        self.sidebar.query_one("#search").focus()

    def save_settings(self, settings: dict, title: str = "New chat") -> bool:
        """Keep ``settings`` as the conversation's; True when one had to be created (named
        ``title``: none was open yet)."""
        created = self.conversation is None
        if created:
            self.conversation = self.history.new_conversation(title, settings)
        else:
            self.history.set_settings(self.conversation.id, settings)
        self.conversation.settings = settings
        return created

    async def action_switch_reasoning(self) -> None:
        """F8: turn reasoning off for this conversation's next turns (they answer at once), or
        on again; kept in its settings."""
        settings = dict(self.conversation.settings or {}) if self.conversation else {}
        settings[REASONING_KEY] = not settings.get(REASONING_KEY, True)
        if self.save_settings(settings):
            await self.refresh_sidebar()
        self.show_reasoning_state()
        self.notify("Reasoning on: the model thinks before it answers (F8 turns it off)" if settings[REASONING_KEY]
                    else "Reasoning off: the model answers without thinking first (F8 turns it on)")

    def show_reasoning_state(self) -> None:
        """The status bar says whether this conversation's reasoning is on."""
        self.status.reasoning = bool((self.conversation and self.conversation.settings or {}).get(REASONING_KEY, True))

    def on_sidebar_closed(self, event: Sidebar.Closed) -> None:
        event.stop()
        self.composer.focus()

    def _show_sidebar(self, shown: bool) -> None:
        self.sidebar.display = shown
        if not shown and self.focused is not None and self.sidebar in self.focused.ancestors:
            self.composer.focus()  # typing must not go on in a hidden search box

    def on_resize(self, event: events.Resize) -> None:
        self.fit_sidebar(event.size.width)

    def fit_sidebar(self, width: int) -> None:
        """Fold the sidebar away when the terminal becomes narrower than `SIDEBAR_MIN_WIDTH`
        columns and show it again when it becomes wider (only on crossing: Ctrl+B's choice
        holds until the next crossing)."""
        narrow = width < SIDEBAR_MIN_WIDTH
        if narrow != self._narrow:
            self._narrow = narrow
            self._show_sidebar(not narrow)
