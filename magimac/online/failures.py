"""Every way an online turn fails, as one line for people (never the key, never the body the
API echoed back, which may quote the conversation).

The exceptions are the `mistralai` SDK's (``SDKError`` and its HTTP status, the response
``ResponseValidationError`` when an event does not parse) and `httpx2`'s transport errors
(the SDK's HTTP client), told apart by class name so this module imports neither.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from magimac.models.online import OnlineModel

CUT = "the connection to Mistral's API was cut mid-answer; what arrived is kept"
MALFORMED = "Mistral's API sent an event magimac cannot read ({}); what arrived is kept"


def _names(e: BaseException) -> set[str]:
    return {c.__name__ for c in type(e).__mro__}


def http_line(status: int, model: OnlineModel, retried_s: float) -> str:
    """The line for an HTTP error ``status`` answering a request for ``model``."""
    if status in (401, 403):
        return (f"Mistral's API refused the key (HTTP {status}): check MISTRAL_API_KEY, or save a new "
                "one with `magimac key set mistral`")
    if status == 404:
        hint = f"; try its successor with `--model {model.successor}`" if model.successor else \
            "; `magimac models` lists the online models"
        return f"Mistral's API does not serve {model.api_model!r} (HTTP 404: retired or unknown){hint}"
    if status == 429:
        return (f"Mistral's API is still rate-limiting (HTTP 429) after {retried_s:.0f} s of retries: "
                "wait a minute, then send again")
    if status == 422:
        return "Mistral's API refused the request (HTTP 422): a setting or message it does not take"
    if status >= 500:
        return f"Mistral's API failed (HTTP {status}): try again in a while"
    return f"Mistral's API answered HTTP {status}"


def describe(e: BaseException, model: OnlineModel, api_url: str, retried_s: float = 0.0,
             answered: bool = False) -> str:
    """One line for ``e``, raised while asking ``api_url`` for ``model``; ``answered``: some of
    the answer had arrived (a transport error then means the stream was cut)."""
    names = _names(e)
    status = getattr(e, "status_code", None)
    if "ResponseValidationError" in names:  # a MistralError too, with the stream's 200
        return MALFORMED.format("not a completion chunk")
    if "MistralError" in names and isinstance(status, int):
        return http_line(status, model, retried_s)
    if "MalformedEvent" in names:
        return MALFORMED.format(str(e))
    host = urlsplit(api_url).netloc or api_url
    if "ConnectError" in names or "ConnectTimeout" in names:
        reason = str(e).split("] ", 1)[-1] or "no route"
        return f"cannot reach Mistral's API at {host} ({reason}): check the network, then send again"
    if "TimeoutException" in names:
        return f"Mistral's API at {host} stopped answering (timed out); what arrived is kept"
    if answered or {"RemoteProtocolError", "ReadError", "NetworkError"} & names:
        return CUT
    return f"the request to Mistral's API failed ({type(e).__name__})"
