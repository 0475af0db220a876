"""What every inference provider offers, in OpenAI's shapes.

The pivot format is OpenAI's: a chat request is a dict of `chat.completions.create` params
(openai.types.chat.CompletionCreateParams), a result is a `chat.completion` dict, a stream yields
`chat.completion.chunk` dicts. Providers that speak another protocol (Anthropic, Gemini) translate in
their adapter (app/inference/translate/), so services call every provider the same way. A provider may
also relay a request of its own protocol byte for byte (`relay`), which the endpoints use when the
client and the upstream speak the same protocol: no parse, no re-encode, no buffering.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol


class UpstreamError(Exception):
    """An upstream answered with an error (or could not be reached): its status and its error body,
    already in OpenAI's `{"error": {...}}` shape. Endpoints of another protocol translate it again."""

    def __init__(self, status_code: int, body: dict, headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("error", {}).get("message", "upstream error"))
        self.status_code = status_code
        self.body = body
        self.headers = headers or {}


def served_tier(requested: Any) -> str:
    """The `service_tier` an answer reports for the one requested: OpenAI reports `priority` for `fast`,
    and `default` for `auto` or none."""
    return {"flex": "flex", "priority": "priority", "fast": "priority", "scale": "scale"}.get(requested, "default")


@dataclass
class RelayResponse:
    """An upstream response passed through as it arrives."""

    status_code: int
    headers: dict[str, str]
    body: AsyncIterator[bytes]  # the raw bytes; SSE streams are not re-framed
    close: Any = None  # an async callable releasing the connection, when the body is not fully read


@dataclass
class MediaFile:
    """A file part of a multipart image or audio request (the field name without any [] suffix)."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class MediaRequest:
    """An images or audio request, as the client sent it (`params`, `files`: what an upstream is sent,
    on `path` under its base URL) and as the service checked it (`plan`: what the offline model works
    from). Checked before routing, so every provider gets a request OpenAI's rules accept."""

    path: str  # "images/generations" | "images/edits" | "images/variations" | "audio/speech" | "audio/transcriptions" | "audio/translations"
    params: dict
    files: list[MediaFile] = field(default_factory=list)
    plan: Any = None
    stream: bool = False
    framing: str = "openai"  # the offline image stream's framing (X-Understudy-Image-Stream); upstream streams are relayed as sent


@dataclass
class MediaAnswer:
    """A provider's answer to a MediaRequest: `json` (a dict), `content` (bytes or text of `media_type`),
    `events` ((name, data) pairs, sent as server-sent events) or `relayed` (a RelayResponse: an
    upstream's answer passed on as it arrives, error statuses included)."""

    kind: str
    body: Any
    media_type: str = "application/json"


@dataclass
class VideoAssets:
    """A generated video's downloadable assets (the `content` variants)."""

    mp4: bytes
    thumbnail: bytes  # image/webp
    spritesheet: bytes  # image/webp


# Called as a video job advances: (the upstream's video id or "", progress 0-100); False means stop (the
# video was deleted meanwhile).
VideoProgress = Callable[[str, int], Awaitable[bool]]


@dataclass
class ProviderInfo:
    name: str
    kind: str  # "offline" | "openai" | "anthropic" | "gemini"
    extra: dict = field(default_factory=dict)


class Provider(Protocol):
    info: ProviderInfo

    async def chat(self, params: dict) -> dict:
        """A `chat.completion` for `params` (stream is ignored)."""
        ...

    def chat_stream(self, params: dict) -> AsyncIterator[dict]:
        """`chat.completion.chunk` dicts; the last carries `usage` when
        `stream_options.include_usage` is set."""
        ...

    async def completions(self, params: dict) -> dict: ...

    def completions_stream(self, params: dict) -> AsyncIterator[dict]: ...

    async def embeddings(self, params: dict) -> dict: ...

    async def moderations(self, params: dict) -> dict: ...

    async def images(self, request: MediaRequest) -> MediaAnswer:
        """Generations, edits and variations (`request.path` says which)."""
        ...

    async def speech(self, request: MediaRequest) -> MediaAnswer: ...

    async def transcription(self, request: MediaRequest) -> MediaAnswer:
        """Transcriptions and translations (`request.path` says which)."""
        ...

    async def videos(self, request: MediaRequest, report: VideoProgress) -> VideoAssets | None:
        """One video, to its end: `request.path` ("videos", "videos/{id}/remix", "videos/edits",
        "videos/extensions") and `params`/`files` as OpenAI's API takes them, `plan` what the offline model
        renders from (and `upstream_id`, a job resumed after the upstream accepted it). None when
        `report` said stop."""
        ...

    async def close(self) -> None: ...
