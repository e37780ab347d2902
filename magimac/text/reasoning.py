"""Split a model's output stream into reasoning and answer.

Magistral 1.1/1.2 mark reasoning with the control tokens ``[THINK]`` / ``[/THINK]`` (ids read
from the tokenizer with `Tekkenizer.get_special_token`); Magistral 1.0 writes plain text
``<think>`` / ``</think>``, which may be split across tokens, so the splitter works on text
and holds back any tail that could be the start of a marker.

States: *start* -> (opening marker) -> *reasoning* -> (closing marker) -> *answer*.  A model
that skips reasoning goes from *start* straight to *answer* at its first token that is not the
opening marker (text kind: its first non-blank text that cannot begin ``<think>``); once in the
answer, marker text is ordinary answer text.  A turn that ends while still in *reasoning*
(token limit, cancel) keeps what was reasoned; the answer is then empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from mistral_common.tokens.tokenizers.tekken import Tekkenizer

from magimac.text.detokenize import StreamingDetokenizer
from magimac.core.events import AnswerDelta, ReasoningDelta

START, REASONING, ANSWER = "start", "reasoning", "answer"


@dataclass(frozen=True)
class ReasoningMarkers:
    """How a model marks its reasoning.

    Attributes:
        kind: ``"control"`` (control tokens) or ``"text"`` (plain-text markers).
        open_text / close_text: ``"[THINK]"``/``"[/THINK]"`` or ``"<think>"``/``"</think>"``.
        open_id / close_id: the control token ids (kind ``"control"``), else None.
    """

    kind: str
    open_text: str
    close_text: str
    open_id: int | None = None
    close_id: int | None = None


def markers_for(tekken: Tekkenizer) -> ReasoningMarkers:
    """The reasoning markers of a tokenizer: control ``[THINK]`` tokens when it has them
    (Magistral 1.1/1.2, Tekken v13: 34/35), else ``<think>`` text (Magistral 1.0)."""
    try:
        return ReasoningMarkers("control", "[THINK]", "[/THINK]",
                                tekken.get_special_token("[THINK]"), tekken.get_special_token("[/THINK]"))
    except Exception:  # mistral-common raises a bare ValueError/KeyError-like error for unknown tokens
        return ReasoningMarkers("text", "<think>", "</think>")


class ReasoningSplitter:
    """Feed generated token ids; get ReasoningDelta / AnswerDelta events.

    Attributes:
        state: ``"start"``, ``"reasoning"`` or ``"answer"``.
        reasoning_tokens / answer_tokens: tokens counted in each part (control kind: the
            marker tokens count in neither; text kind: a token counts in the part it ends in).
    """

    def __init__(self, markers: ReasoningMarkers, tekken: Tekkenizer) -> None:
        self.markers = markers
        self._detok = StreamingDetokenizer(tekken)
        self.state = START
        self.reasoning_tokens = 0
        self.answer_tokens = 0
        self._pending = ""  # text kind: text not yet emitted (may hold a partial marker)

    def feed(self, token_id: int) -> list[ReasoningDelta | AnswerDelta]:
        """One generated token id -> zero or more events."""
        m = self.markers
        if m.kind == "control":
            if token_id == m.open_id and self.state == START:
                self.state = REASONING
                return []
            if token_id == m.close_id and self.state != ANSWER:
                self.state = ANSWER
                return self._emit_reasoning(self._detok.flush())
            text = self._detok.add(token_id)
            if self.state == START:
                self.state = ANSWER
            if self.state == REASONING:
                self.reasoning_tokens += 1
                return self._emit_reasoning(text)
            self.answer_tokens += 1
            return [AnswerDelta(text)] if text else []
        events = self._feed_text(self._detok.add(token_id))
        if self.state == REASONING:
            self.reasoning_tokens += 1
        elif self.state == ANSWER:
            self.answer_tokens += 1
        return events

    def flush(self) -> list[ReasoningDelta | AnswerDelta]:
        """End of the turn: emit what is held back (a partial marker is emitted as text)."""
        text = self._pending + self._detok.flush()
        self._pending = ""
        if not text:
            return []
        if self.state == REASONING:
            return [ReasoningDelta(text)]
        return [AnswerDelta(text)]

    @staticmethod
    def _emit_reasoning(text: str) -> list[ReasoningDelta | AnswerDelta]:
        return [ReasoningDelta(text)] if text else []

    def _feed_text(self, text: str) -> list[ReasoningDelta | AnswerDelta]:
        m = self.markers
        buf = self._pending + text
        out: list[ReasoningDelta | AnswerDelta] = []
        while True:
            if self.state == ANSWER:
                self._pending = ""
                if buf:
                    out.append(AnswerDelta(buf))
                return out
            if self.state == START:
                stripped = buf.lstrip()
                if stripped.startswith(m.open_text):
                    self.state = REASONING
                    buf = stripped[len(m.open_text):]
                    continue
                if m.open_text.startswith(stripped):  # blank, or a partial opening marker
                    self._pending = buf
                    return out
                self.state = ANSWER
                continue
            # REASONING: look for the closing marker
            i = buf.find(m.close_text)
            if i >= 0:
                if i:
                    out.append(ReasoningDelta(buf[:i]))
                self.state = ANSWER
                buf = buf[i + len(m.close_text):]
                continue
            keep = _partial_suffix(buf, m.close_text)
            emit, self._pending = buf[: len(buf) - keep], buf[len(buf) - keep:]
            if emit:
                out.append(ReasoningDelta(emit))
            return out


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of ``marker``."""
    for n in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0
