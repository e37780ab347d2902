"""Per-conversation settings: model, system prompt, sampling, reasoning budget and history.

Settings live in the conversation's ``settings`` dict in the history database (JSON):
``model`` (name or directory; absent: the app's model), ``system_prompt_mode`` (``default``:
the model's own SYSTEM_PROMPT.txt, ``none``, ``custom``), ``system_prompt`` (the custom text),
each number of `magimac.core.settings.SETTINGS` under its name (``temperature``, ``top_p``,
``top_k``, ``min_p``, ``repetition_penalty``, ``seed``, ``max_tokens``, ``reasoning_budget``;
absent: the engine's defaults), ``reasoning`` (bool, default True; False: turned off with F8, a budget of 0),
``keep_reasoning`` (bool), ``reasoning_instructions`` (bool, default True: a custom system
prompt without a ``[THINK]`` block is sent after the model's reasoning instructions, so the
model still reasons; `magimac.text.prompt.with_reasoning_instructions`), ``tools`` (the
tools offered, default `magimac.tui.tool_use.DEFAULT_TOOLS`; the built-ins and the MCP
servers' tools, each a switch) and ``allowed_tools``, ``libraries``
(names of libraries searched with every message; `magimac.session.library`).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, Switch, TextArea

from magimac.models.online import RetiredModel
from magimac.session.model import choose_model
from magimac.core.settings import DEFAULT, SETTINGS, GenerationSettings, SettingError
from magimac.tools.toolbox import BUILTIN_NAMES

TOOL_LABELS = {
    "python": "Tool python: the model may run Python in a sandbox (asks you first)",
    "search_documents": "Tool search_documents: the model may search the attached documents",
}

PROMPT_MODES = [("the model's own", "default"), ("none", "none"), ("custom (below)", "custom")]


def number_error(key: str, raw: str) -> str | None:
    """Why ``raw`` is no value for the setting ``key`` (None when it is one): not a number of its
    kind, or outside its range in the one settings table (`magimac.core.settings.SETTINGS`), the
    same `magimac chat` and `magimac serve` check."""
    row = SETTINGS[key]
    try:
        row.parse(raw, row.label + ":")
    except SettingError as e:
        return str(e)
    return None


def parse_libraries(raw: str) -> tuple[list[str], str | None]:
    """``"papers, notes"`` -> (names, None), or ([], the one-line reason one cannot be used)."""
    from magimac.core.errors import MagimacError
    from magimac.text.library import store as libraries

    names = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    try:
        for name in names:
            libraries.open_index(name).close()
    except MagimacError as e:
        return [], str(e)
    return names, None


def generation_settings(settings: dict) -> GenerationSettings:
    """The engine's `GenerationSettings` for a conversation's settings dict (a ``seed`` in it,
    an integer, makes each of its turns repeatable: `GenerationSettings.seed`; ``reasoning``
    False, reasoning turned off, gives a reasoning budget of 0).  A number outside its range in
    `SETTINGS` (saved by an older magimac, e.g. a temperature of 5) is left unset: the F2 form
    shows it and refuses to save it until it is corrected."""
    mode = settings.get("system_prompt_mode", "default")
    prompt = DEFAULT if mode == "default" else None if mode == "none" else settings.get("system_prompt", "")
    numbers = {key: settings[key] for key, row in SETTINGS.items()  # one saved outside today's range: unset
               if settings.get(key) is not None and row.problem(settings[key]) is None}
    if settings.get("reasoning") is False:
        numbers["reasoning_budget"] = 0
    return GenerationSettings(
        **numbers,
        keep_reasoning=bool(settings.get("keep_reasoning", False)),
        system_prompt=prompt,
        reasoning_instructions=bool(settings.get("reasoning_instructions", True)),
    )


class SettingsScreen(ModalScreen[dict | None]):
    """Edit a settings dict; dismisses with the new dict (Ctrl+S / Save) or None (Esc)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, settings: dict, model_hint: str, mcp_tools: list = ()) -> None:
        """``mcp_tools``: the MCP servers' `ToolSpec`s, offered after the built-in tools."""
        super().__init__()
        self.settings = dict(settings)
        self.model_hint = model_hint
        self.mcp_tools = list(mcp_tools)

    def compose(self) -> ComposeResult:
        s = self.settings
        with VerticalScroll(id="settings", classes="dialog"):
            yield Label("Conversation settings", classes="dialog-title")
            yield Label("Model (registry name or directory; empty: the app's)")
            yield Input(s.get("model") or "", placeholder=self.model_hint, id="model")
            yield Label("System prompt")
            yield Select(PROMPT_MODES, value=s.get("system_prompt_mode", "default"), allow_blank=False,
                         id="system_prompt_mode", compact=True)
            yield TextArea(s.get("system_prompt", ""), id="system_prompt", soft_wrap=True)
            with Horizontal(classes="switch-row"):
                yield Switch(bool(s.get("reasoning_instructions", True)), id="reasoning_instructions")
                yield Label("Keep the model's reasoning instructions before a custom prompt (so it still reasons)")
            for key, row in SETTINGS.items():  # every number of the one settings table
                with Horizontal(classes="number-row"):
                    yield Label(row.label)
                    value = s.get(key)
                    yield Input("" if value is None else str(value), placeholder=f"empty: {row.unset}",
                                tooltip=f"{row.about}: {row.range}", id=key)
            with Horizontal(classes="switch-row"):
                yield Switch(bool(s.get("keep_reasoning", False)), id="keep_reasoning")
                yield Label("Keep earlier answers' reasoning in the prompt (uses context)")
            from magimac.tui.tool_use import DEFAULT_TOOLS

            for name in BUILTIN_NAMES:
                with Horizontal(classes="switch-row"):
                    yield Switch(name in s.get("tools", DEFAULT_TOOLS), id=f"tool_{name}")
                    yield Label(TOOL_LABELS[name])
            for i, spec in enumerate(self.mcp_tools):  # ids by position: MCP names may have any characters
                with Horizontal(classes="switch-row"):
                    yield Switch(spec.name in s.get("tools", DEFAULT_TOOLS), id=f"mcp_{i}")
                    yield Label(f"Tool {spec.name} ({spec.source.replace(':', ' server ')}): {spec.description} (asks you first)")
            yield Label("Libraries searched with each message (names, commas; magimac library list)")
            yield Input(", ".join(s.get("libraries", [])), placeholder="none", id="libraries")
            # above the buttons, and scrolled into view with them (`show_error`): below them it
            # was off-screen at 30 rows, and Save seemed to do nothing
            error = Static("", id="settings-error", classes="error")
            error.display = False  # no blank row until there is something to say
            yield error
            with Horizontal(classes="buttons"):
                yield Button("Save (Ctrl+S)", id="save", variant="primary")
                yield Button("Cancel (Esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)

    def show_error(self, text: str) -> None:
        """Show why Save was refused just above the buttons, and scroll both into view."""
        error = self.query_one("#settings-error", Static)
        error.update(text)
        error.display = True
        scroll = self.query_one("#settings", VerticalScroll)
        self.call_after_refresh(scroll.scroll_end, animate=False)  # once the line has its height

    def action_save(self) -> None:
        out = dict(self.settings)
        model = self.query_one("#model", Input).value.strip()
        if model:
            try:  # refuse a model that cannot be found now, not each time the chat opens
                choose_model(model)
            except RetiredModel as e:  # offer its successor: filled in, Save again takes it
                if e.successor:
                    self.query_one("#model", Input).value = e.successor
                self.show_error(f"Model: {e}" + (" (filled in: Save to use it)" if e.successor else ""))
                return
            except Exception as e:  # ModelNotFound, registry errors: the one-line reason
                self.show_error(f"Model: {e}")
                return
            out["model"] = model
        else:
            out.pop("model", None)
        out["system_prompt_mode"] = self.query_one("#system_prompt_mode", Select).value
        out["system_prompt"] = self.query_one("#system_prompt", TextArea).text
        for key, row in SETTINGS.items():
            raw = self.query_one(f"#{key}", Input).value.strip()
            if not raw:
                out.pop(key, None)
                continue
            if problem := number_error(key, raw):
                self.show_error(problem)
                return
            out[key] = row.parse(raw)
        libraries, problem = parse_libraries(self.query_one("#libraries", Input).value)
        if problem:
            self.show_error(f"Libraries: {problem}")
            return
        out["libraries"] = libraries
        out["keep_reasoning"] = self.query_one("#keep_reasoning", Switch).value
        out["reasoning_instructions"] = self.query_one("#reasoning_instructions", Switch).value
        from magimac.tui.tool_use import DEFAULT_TOOLS

        offered = [t.name for t in self.mcp_tools]
        kept = [n for n in out.get("tools", DEFAULT_TOOLS) if n not in BUILTIN_NAMES and n not in offered]
        mcp_on = [t.name for i, t in enumerate(self.mcp_tools) if self.query_one(f"#mcp_{i}", Switch).value]
        # kept: MCP tools switched on earlier whose server is not running now
        out["tools"] = [n for n in BUILTIN_NAMES if self.query_one(f"#tool_{n}", Switch).value] + kept + mcp_on
        self.dismiss(out)
