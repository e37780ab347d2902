"""The status bar: model and quantization, where it runs when not here (``☁ Mistral API``),
"reasoning off (F8)" when the conversation's reasoning is turned off (on, the default, leaves
the room to the numbers at 80 columns), context used of its limit, TTFT, tokens/s, memory, and the prompt tokens the last turn read from the prompt
cache on disk (shown only when there were)."""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from textual.reactive import reactive
from textual.widgets import Static

from magimac.core.units import format_bytes

SEPARATOR = " │ "
MIN_MODEL_CELLS = 12
"""The model's name is shortened (with "…") to what the numbers leave, but not below this."""


def human_tokens(n: int) -> str:
    """``812`` / ``12.3K`` / ``128K``."""
    if n < 10_000:
        return str(n)
    k = n / 1000
    return f"{k:.1f}K" if k < 100 else f"{k:.0f}K"


def prefill_label(ev) -> str:
    """A long prompt being read (`magimac.core.events.Prefill`): ``reading prompt 12.3K/42.0K``."""
    return f"reading prompt {human_tokens(ev.done_tokens)}/{human_tokens(ev.total_tokens)}"


class StatusBar(Static):
    """One line of facts; set the reactive attributes and it redraws."""

    model = reactive("no model")
    load_state = reactive("")  # e.g. "loading 40%"; empty once loaded (Widget.loading is taken)
    prefill = reactive("")  # a long prompt being read (`prefill_label`); empty once the model writes
    context_used = reactive(0)
    context_limit = reactive(0)
    ttft_s: reactive[float | None] = reactive(None)
    tokens_per_s: reactive[float | None] = reactive(None)
    memory_bytes = reactive(0)
    disk_tokens = reactive(0)
    generating = reactive(False)
    service = reactive("")  # "" on this machine, else where the model runs ("Mistral API")
    reasoning = reactive(True)  # the conversation's reasoning is on (F8 switches it)

    def render(self) -> str:
        """One line: the model's name, shortened to leave the numbers visible (a registry
        display name such as the demo's is longer than an 80-column terminal leaves)."""
        parts = []
        if self.service:
            parts.append(f"☁ {self.service}")
        if self.load_state:
            parts.append(self.load_state)
        if not self.reasoning:
            parts.append("reasoning off (F8)")
        if self.prefill:
            parts.append(self.prefill)
        if self.context_limit:
            parts.append(f"ctx {human_tokens(self.context_used)}/{human_tokens(self.context_limit)}")
        if self.ttft_s is not None:
            parts.append(f"TTFT {self.ttft_s:.2f} s")
        if self.disk_tokens:
            parts.append(f"{human_tokens(self.disk_tokens)} from disk")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.1f} tok/s")
        if self.memory_bytes and not self.service:  # an online model takes no memory here
            parts.append(f"mem {format_bytes(self.memory_bytes)}")
        if self.generating:
            parts.append("Esc stops")
        rest = SEPARATOR.join(parts)
        model = self.model
        room = self.content_size.width - (cell_len(SEPARATOR + rest) if parts else 0)
        if room > 0 and cell_len(model) > room:
            model = set_cell_size(model, max(room, MIN_MODEL_CELLS) - 1) + "…"
        return SEPARATOR.join([model, *parts])
