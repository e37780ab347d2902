"""What a turn of the bundled demo model needs that Magistral does not.

- Its "I can't do that" reply in the question's language: the turn's settings say which
  openings its reasoning may not take (`magimac.demo.language`), because the 3 MB model guesses
  the language poorly once a tools list, library passages or an image come before the question.
- Reasoning off (``--reasoning-budget 0``, ``reasoning_effort: "none"``): the demo was trained
  to reason before every answer (its arithmetic is done in the reasoning) and, made to close
  its ``[THINK]`` block at once, writes reasoning-like scraps into the answer.  So it reasons as
  usual (a few dozen tokens) and its reasoning is not shown: the answer comes alone.

Both would rather be learnt by the model: a retrained demo (`magimac.demo.train`) with prompts
like these and answers without reasoning would need neither.
"""

from __future__ import annotations

import dataclasses

from magimac.core.conversation import Message
from magimac.demo.language import banned_openings


def demo_settings(settings, messages: list[Message]):
    """``(settings, hide_reasoning)`` for a turn of the demo answering ``messages``.

    Args:
        settings: the turn's `GenerationSettings` (None: the defaults).

    Returns:
        the settings with ``banned_openings`` for the last user message's language and, with a
        reasoning budget of 0, no budget; and whether the turn's reasoning is to be left out.
    """
    from magimac.core.settings import GenerationSettings

    settings = settings or GenerationSettings()
    question = next((m.content for m in reversed(messages) if m.role == "user"), "")
    hide = settings.reasoning_budget == 0
    return dataclasses.replace(settings, banned_openings=banned_openings(question),
                               reasoning_budget=None if hide else settings.reasoning_budget), hide
