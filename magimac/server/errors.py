"""Errors `magimac serve` answers with, in the OpenAI error shape.

The shape (OpenAI's API reference, "Error codes"; the `openai` client reads it into
``APIStatusError.body``)::

    {"error": {"message": "...", "type": "invalid_request_error", "param": "temperature", "code": null}}
"""

from __future__ import annotations

from magimac.core.errors import MagimacError


class RequestError(MagimacError):
    """A request the server refuses; one line naming the field and what to send instead.

    Attributes:
        status: the HTTP status (400 bad input, 401 key, 404 unknown model, 413 too large).
        param: the request field at fault (``"messages[1].content[0].image_url"``) or None.
        type / code: OpenAI's error type and code.
    """

    def __init__(self, message: str, param: str | None = None, *, status: int = 400,
                 type: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param, self.type, self.code = status, param, type, code

    def body(self) -> dict:
        """The JSON body of the error response."""
        return error_body(str(self), self.type, self.param, self.code)


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}
