"""The app's side of online models (Mistral's API): the question before the first message of a
conversation goes out, the offer of a retired model's successor, and rate-limit notices.

A mixin of `magimac.tui.app.MagimacApp` (it uses ``session``, ``conversation``, ``history``,
``messages`` and the app's screens). Consent is kept in the conversation's settings
(`CONSENT_KEY`), so it is asked once per conversation, also after the app restarts.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from magimac.models.online import RetiredModel
from magimac.tui.messages import TurnNotice
from magimac.tui.screens import Confirm

CONSENT_KEY = "online_ok"
"""Settings key: True once the person agreed that this conversation goes to Mistral's API."""


def consent_question(display_name: str, api_url: str, messages: int) -> str:
    """The question of the consent screen (the model, where it goes, what goes)."""
    what = "your message" if messages <= 1 else f"this conversation ({messages} messages)"
    return (f"{display_name} runs on Mistral's API, not on this Mac. Send {what}, with its images "
            f"and documents, to {api_url}? Asked once per conversation.")


class OnlineChat:
    """Consent and successor offers (mixed into the App)."""

    def needs_consent(self) -> bool:
        """Whether the next message goes to an online model that this conversation has not
        been allowed to reach yet."""
        session = self.session
        if session is None or session.choice.online is None:
            return False
        return not (self.conversation is not None and (self.conversation.settings or {}).get(CONSENT_KEY))

    def ask_consent(self, title: str, then: Callable[[], Awaitable[None]]) -> None:
        """Ask (a modal `Confirm`); on yes record it in the conversation (created with ``title``
        when there is none yet) and run ``then``; on no, nothing is sent."""
        online = self.session.choice.online

        async def done(yes: bool | None) -> None:
            if not yes:
                self.notify("Not sent: nothing left this Mac", severity="warning")
                return
            self.save_settings({**(self.conversation and self.conversation.settings or {}), CONSENT_KEY: True}, title)
            await then()

        url = self.session.api_url or online.api_url
        self.push_screen(Confirm(consent_question(online.display_name, url, len(self.messages) + 1)), done)

    def offer_successor(self, error: RetiredModel) -> None:
        """A retired online model was chosen: say so, and offer its successor (yes switches this
        conversation to it); without a successor, say so only."""
        if not error.successor:
            self.status.model = "no model"
            self.notify(str(error), title="Model", severity="error", timeout=15)
            return
        def done(yes: bool | None) -> None:
            if not yes:
                self.status.model = "no model"
                return
            if self.conversation is not None:
                self.save_settings({**(self.conversation.settings or {}), "model": error.successor})
            self.start_engine(error.successor)

        self.push_screen(Confirm(f"{error.retired}. Use its successor, {error.successor_label}, now?"), done)

    def on_turn_notice(self, message: TurnNotice) -> None:
        """A turn waits (rate limit): say so while it waits."""
        self.notify(message.text, title="Mistral API", severity="warning", timeout=max(5.0, message.wait_s or 0))
