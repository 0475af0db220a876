"""Injected faults, raised the way a real upstream's failures are: an `UpstreamError` becomes the
endpoint's own error shape (OpenAI's body, Anthropic's, Gemini's), a failed run's `last_error`, a batch
line's retried-then-failed response. A `StreamFault` breaks a stream that already started: the SSE
helper writes its frame (a malformed chunk) and drops the connection, as a broken upstream would."""
from __future__ import annotations

import msgspec

from app.core.sse import BrokenStream
from app.inference.base import UpstreamError
from app.core.tokens import count_chat_tokens

# OpenAI's words for the statuses tests inject most.
_DEFAULTS = {
    429: ("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("The upstream did not answer in time.", "timeout", None),
}
CONTEXT_WINDOW = 128_000


class StreamFault(UpstreamError, BrokenStream):
    """A stream broken after it started; `frame` (bytes) is written before the connection drops."""

    def __init__(self, frame: bytes, message: str) -> None:
        super().__init__(502, {"error": {"message": message, "type": "server_error", "param": None, "code": "stream_interrupted"}})
        self.frame = frame


def error_for(fault: dict, params: dict, *, streamed: bool) -> UpstreamError:
    if fault.get("timeout") is not None:
        return UpstreamError(504, {"error": {"message": _DEFAULTS[504][0], "type": "timeout", "param": None, "code": "timeout"}})
    if fault.get("status") is None:  # a cut or malformed stream asked of a call that does not stream
        return UpstreamError(502, {"error": {"message": "The upstream connection was cut before it answered (scripted fault).",
                                             "type": "server_error", "param": None, "code": "stream_interrupted"}})
    status, code = fault["status"], fault.get("code")
    message, kind, default_code = _DEFAULTS.get(status, ("The upstream returned an error (scripted fault).",
                                                         "server_error" if status >= 500 else "invalid_request_error", None))
    param = fault.get("param")
    if code == "context_length_exceeded" and not fault.get("message"):
        used = count_chat_tokens(params.get("messages") or ()) if "messages" in params else 0
        message = (f"This model's maximum context length is {CONTEXT_WINDOW} tokens. However, your messages resulted in "
                   f"{max(used, CONTEXT_WINDOW + 1)} tokens. Please reduce the length of the messages.")
        kind, param = "invalid_request_error", param or "messages"
    body = {"error": {"message": fault.get("message") or message, "type": fault.get("type") or kind, "param": param,
                      "code": code if code is not None else default_code}}
    headers = {}
    if fault.get("retry_after") is not None:
        headers["retry-after"] = _seconds(fault["retry_after"])
        headers["retry-after-ms"] = str(int(fault["retry_after"] * 1000))
    return UpstreamError(status, body, headers)


def malformed_frame(chunk: dict) -> bytes:
    """The chunk's event cut in the middle of its JSON: what a client's parser chokes on."""
    raw = msgspec.json.encode(chunk)
    return b"data: " + raw[: max(len(raw) // 2, 1)] + b"\n\n"


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
