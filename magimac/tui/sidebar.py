"""The sidebar: search box and the list of conversations (or search results)."""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Label, ListItem, ListView

from magimac.text.history import MARK_END, MARK_START, ConversationInfo, SearchHit


def highlighted(snippet: str) -> Content:
    """A search snippet with its matched terms (between `history.MARK_START`/`MARK_END`) in bold."""
    parts = re.split(f"{MARK_START}(.*?){MARK_END}", snippet)
    return Content.assemble(*[(p, "bold reverse") if i % 2 else p for i, p in enumerate(parts) if p])


class ConversationItem(ListItem):
    """One row: a conversation, or a search hit in one (``message_id`` set)."""

    def __init__(self, conversation_id: int, text: str | Content, message_id: int | None = None) -> None:
        super().__init__(Label(text, markup=False))
        self.conversation_id = conversation_id
        self.message_id = message_id


class Sidebar(Vertical):
    """Conversations, most recent first; typing in the search box lists full-text matches.

    Keys on the list: Enter opens, ``r`` renames, ``Delete`` deletes; Esc (in the search box
    or the list) closes the search (`Sidebar.Closed`).
    """

    BINDINGS = [
        Binding("r", "rename", "Rename", show=False),
        Binding("delete,d", "delete", "Delete", show=False),
        Binding("escape", "close", "Close search", show=False),
    ]

    class Open(Message):
        """Open ``conversation_id`` (scrolling to ``message_id`` when set)."""

        def __init__(self, conversation_id: int, message_id: int | None = None) -> None:
            super().__init__()
            self.conversation_id = conversation_id
            self.message_id = message_id

    class Search(Message):
        """The search text changed."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Action(Message):
        """Rename or delete the highlighted conversation (``action``: "rename"/"delete")."""

        def __init__(self, action: str, conversation_id: int) -> None:
            super().__init__()
            self.action = action
            self.conversation_id = conversation_id

    class Closed(Message):
        """Esc in the sidebar: the search box was emptied; the keys go back to the message box."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Search (Ctrl+F)", id="search")
        yield ListView(id="conversations")

    @property
    def list(self) -> ListView:
        return self.query_one("#conversations", ListView)

    async def show_conversations(self, conversations: list[ConversationInfo], current: int | None) -> None:
        """List conversations; highlight ``current``."""
        lv = self.list
        await lv.clear()
        items = [ConversationItem(c.id, c.title) for c in conversations]
        await lv.extend(items)
        for i, c in enumerate(conversations):
            if c.id == current:
                lv.index = i

    async def show_hits(self, hits: list[SearchHit]) -> None:
        """List search results: title, then the matching snippet; the first is highlighted."""
        lv = self.list
        await lv.clear()
        if not hits:
            await lv.append(ListItem(Label("no matches"), disabled=True))
            return
        await lv.extend(ConversationItem(h.conversation_id, Content.assemble(h.title, "\n  ", highlighted(h.snippet)),
                                         h.message_id)
                        for h in hits)
        lv.index = 0  # Enter in the search box, then Enter, opens the best hit

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Search(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.list.focus()

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        item = event.item
        if isinstance(item, ConversationItem):
            self.post_message(self.Open(item.conversation_id, item.message_id))

    def action_close(self) -> None:
        self.query_one("#search", Input).value = ""  # its Changed lists the conversations again
        self.post_message(self.Closed())

    def _highlighted(self) -> int | None:
        item = self.list.highlighted_child
        return item.conversation_id if isinstance(item, ConversationItem) else None

    def action_rename(self) -> None:
        if (cid := self._highlighted()) is not None:
            self.post_message(self.Action("rename", cid))

    def action_delete(self) -> None:
        if (cid := self._highlighted()) is not None:
            self.post_message(self.Action("delete", cid))
