"""Any OpenAI-compatible upstream (OpenAI itself, Azure-style gateways, vLLM, Ollama, LiteLLM...), and the
HTTP plumbing the Anthropic and Gemini providers share with it.

Why a shared base: the three upstream kinds differ only in auth headers, paths and error shapes; the
sending, retrying, SSE reading, error mapping and byte-for-byte relay are the same, so they live once in
`HTTPProvider` and each kind overrides a few hooks.
"""
from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any, AsyncIterator

import msgspec

from app.inference import cassettes, http
from app.inference.base import MediaAnswer, MediaRequest, ProviderInfo, RelayResponse, UpstreamError, VideoAssets, VideoProgress
from app.inference.multipart import form_body

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


class NoMedia:
    """For an upstream whose protocol has no images or audio API: each is a clear 400 (OpenAI's shape)."""

    async def images(self, request: MediaRequest) -> MediaAnswer:
        raise self.not_supported(f"/v1/{request.path}")

    async def speech(self, request: MediaRequest) -> MediaAnswer:
        raise self.not_supported(f"/v1/{request.path}")

    async def transcription(self, request: MediaRequest) -> MediaAnswer:
        raise self.not_supported(f"/v1/{request.path}")

    async def videos(self, request: MediaRequest, report: VideoProgress) -> VideoAssets | None:
        raise self.not_supported(f"/v1/{request.path}")


class HTTPProvider:
    kind = "openai"
    default_base_url = "https://api.openai.com/v1"
    speaks_responses = False  # whether /v1/responses is relayed here as it is (else translated to chat)

    def __init__(
        self,
        name: str,
        base_url: str | None,
        api_key: str | None,
        client: http.UpstreamClient,
        *,
        timeout: float | None = http.DEFAULT_READ_TIMEOUT,
        retry: http.RetryPolicy = http.RetryPolicy(),
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.info = ProviderInfo(name, self.kind, {"base_url": self.base_url})
        self.api_key = api_key or ""
        self.client = client
        self.timeout = http.timeout(timeout)
        self.retry = retry
        self.extra_headers = dict(headers or {})

    # ---- protocol hooks ----

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def is_native_error(self, body: Any) -> bool:
        return isinstance(body, dict) and isinstance(body.get("error"), dict)

    def native_error(self, status: int, message: str) -> dict:
        """An error body in this upstream's own protocol (for failures the upstream did not describe)."""
        return http.openai_error_body(status, message)

    def to_openai_error(self, status: int, native: dict) -> dict:
        error = native["error"]
        if error.get("message") and "type" in error:
            return native
        return http.openai_error_body(status, http.error_text(native, "The upstream provider returned an error."), error.get("code"))

    # ---- errors ----

    def error(self, status: int, body: Any, headers: dict[str, str] | None = None) -> UpstreamError:
        """The upstream's error (raw bytes or parsed) as an UpstreamError in OpenAI's shape; `.native`
        keeps (status, body in the upstream's own shape)."""
        if isinstance(body, (bytes, bytearray)):
            try:
                body = _decode(body)
            except msgspec.DecodeError:
                body = body.decode("utf-8", errors="replace")
        if not self.is_native_error(body):
            body = self.native_error(status, http.error_text(body, f"The upstream provider answered HTTP {status}."))
        return http.upstream_error(status, self.to_openai_error(status, body), headers, (status, body))

    def unreachable(self, exc: Exception) -> UpstreamError:
        status = 504 if http.is_timeout(exc) else 502
        what = "timed out" if status == 504 else "failed"
        message = f"The request to upstream provider '{self.info.name}' {what}: {type(exc).__name__}: {exc}".rstrip(": ")
        return self.error(status, self.native_error(status, message))

    def not_supported(self, what: str) -> UpstreamError:
        return self.error(400, self.native_error(400, f"{what} is not supported by this provider ({self.info.name}, {self.kind})."))

    def bad_request(self, exc: ValueError) -> UpstreamError:
        """A request the translators cannot express in this upstream's protocol."""
        return self.error(400, self.native_error(400, str(exc)))

    # ---- transport ----

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    async def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str], *, stream: bool) -> http.UpstreamResponse:
        try:
            return await http.send_with_retries(
                self.client, method, self.url(path), headers={**self.extra_headers, **headers, **self.auth_headers()},
                content=body, stream=stream, timeout=self.timeout, retry=self.retry,
            )
        except http.TRANSPORT_ERRORS as exc:
            raise self.unreachable(exc) from exc
        except cassettes.CassetteMiss as miss:
            raise self.cassette_miss(miss) from None

    def cassette_miss(self, miss: cassettes.CassetteMiss) -> UpstreamError:
        """Replay had no answer: a 400 with code `cassette_miss` (kept in OpenAI's shape; an endpoint
        speaking this upstream's protocol gets the message in that protocol's error shape)."""
        body = {"error": {"message": str(miss), "type": "invalid_request_error", "param": None, "code": "cassette_miss"}}
        native = body if self.kind == "openai" else self.native_error(400, str(miss))
        return http.upstream_error(400, body, None, (400, native))

    async def post_json(self, path: str, payload: dict) -> dict:
        response = await self.send("POST", path, _encode(payload), {"content-type": "application/json", "accept": "application/json"}, stream=False)
        if response.status_code >= 400:
            raise self.error(response.status_code, response.content, http.response_headers(response.headers))
        try:
            return _decode(response.content)
        except msgspec.DecodeError:
            raise self.error(502, self.native_error(502, "The upstream provider answered with invalid JSON.")) from None

    async def post_sse(self, path: str, payload: dict) -> AsyncIterator[tuple[str, str]]:
        """(event, data) pairs as the upstream sends them; an error status raises before the first."""
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        response = await self.send("POST", path, _encode(payload), headers, stream=True)
        try:
            if response.status_code >= 400:
                raise self.error(response.status_code, await response.aread(), http.response_headers(response.headers))
            async for event in http.iter_sse(response.chunks()):
                yield event
        except http.TRANSPORT_ERRORS as exc:  # the stream broke off: never retried, output was already sent
            raise self.unreachable(exc) from exc
        finally:
            await response.aclose()

    async def relay(self, method: str, path: str, *, body: bytes, headers: dict, stream: bool) -> RelayResponse:
        """The request as it is (path relative to base_url, our credentials instead of the caller's); the
        response as it arrives, error statuses included, so the client sees the upstream's own answer."""
        response = await self.send(method, path, body, self.relay_headers(headers), stream=True)

        async def body_bytes() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.chunks():
                    yield chunk
            except http.TRANSPORT_ERRORS as exc:
                raise self.unreachable(exc) from exc
            finally:
                await response.aclose()

        return RelayResponse(response.status_code, http.response_headers(response.headers), body_bytes(), response.aclose)

    def relay_headers(self, headers: dict | None) -> dict[str, str]:
        return http.request_headers(headers)

    async def close(self) -> None:
        """The client is shared and closed by its owner (the router)."""


class OpenAICompatProvider(HTTPProvider):
    """An OpenAI-compatible upstream; base_url includes the version prefix, like the SDK's (…/v1)."""

    kind = "openai"

    def __init__(self, *args, responses: bool | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Whether the upstream speaks the Responses API too: OpenAI does; most compatible servers
        # (vLLM, Ollama, LiteLLM...) only speak chat completions, so elsewhere it is opt-in.
        self.speaks_responses = self.base_url == self.default_base_url if responses is None else bool(responses)

    async def _stream(self, path: str, params: dict) -> AsyncIterator[dict]:
        async with aclosing(self.post_sse(path, {**params, "stream": True})) as events:
            async for _, data in events:
                if data.strip() == "[DONE]":
                    return
                try:
                    chunk = _decode(data)
                except msgspec.DecodeError:
                    raise self.error(502, self.native_error(502, "The upstream provider sent an invalid stream event.")) from None
                if isinstance(chunk, dict) and chunk.get("error"):  # OpenAI reports late failures inside the stream
                    raise self.error(_status_of(chunk), chunk)
                yield chunk

    async def chat(self, params: dict) -> dict:
        return await self.post_json("/chat/completions", _unstreamed(params))

    def chat_stream(self, params: dict) -> AsyncIterator[dict]:
        return self._stream("/chat/completions", params)

    async def completions(self, params: dict) -> dict:
        return await self.post_json("/completions", _unstreamed(params))

    def completions_stream(self, params: dict) -> AsyncIterator[dict]:
        return self._stream("/completions", params)

    async def embeddings(self, params: dict) -> dict:
        return await self.post_json("/embeddings", params)

    async def moderations(self, params: dict) -> dict:
        return await self.post_json("/moderations", params)

    # Images and audio go as OpenAI's API takes them (JSON for generations and speech, multipart for the
    # requests that carry files); the answer (JSON, audio bytes, text, or a stream) is relayed as it is.

    async def images(self, request: MediaRequest) -> MediaAnswer:
        return await self._media(request)

    async def speech(self, request: MediaRequest) -> MediaAnswer:
        return await self._media(request)

    async def transcription(self, request: MediaRequest) -> MediaAnswer:
        return await self._media(request)

    async def videos(self, request: MediaRequest, report: VideoProgress) -> VideoAssets | None:
        """OpenAI's video job on the upstream: created (once: a resumed job polls the id it has), polled
        every `plan["poll_seconds"]` with its progress reported, and its three content variants fetched."""
        upstream_id = request.plan.get("upstream_id")
        if not upstream_id:
            if request.files:
                body, content_type = form_body(request.params, request.files)
            else:
                body, content_type = _encode(request.params), "application/json"
            created = await self._call("POST", "/" + request.path, body, content_type)
            upstream_id = created["id"]
            if not await report(upstream_id, int(created.get("progress") or 0)):
                return None
        while True:
            video = await self._call("GET", f"/videos/{upstream_id}")
            if video.get("status") == "completed":
                break
            if video.get("status") == "failed":
                error = video.get("error") or {}
                raise self.error(400, self.native_error(400, f"The upstream video failed: {error.get('message') or 'no reason given'}"))
            if not await report(upstream_id, int(video.get("progress") or 0)):
                return None
            await asyncio.sleep(request.plan.get("poll_seconds", 2.0))
        variants = []
        for variant in ("video", "thumbnail", "spritesheet"):
            response = await self.send("GET", f"/videos/{upstream_id}/content?variant={variant}", None, {"accept": "*/*"}, stream=False)
            if response.status_code >= 400:
                raise self.error(response.status_code, response.content, http.response_headers(response.headers))
            variants.append(response.content)
        return VideoAssets(*variants)

    async def _call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> dict:
        headers = {"accept": "application/json", **({"content-type": content_type} if content_type else {})}
        response = await self.send(method, path, body, headers, stream=False)
        if response.status_code >= 400:
            raise self.error(response.status_code, response.content, http.response_headers(response.headers))
        try:
            return _decode(response.content)
        except msgspec.DecodeError:
            raise self.error(502, self.native_error(502, "The upstream provider answered with invalid JSON.")) from None

    async def _media(self, request: MediaRequest) -> MediaAnswer:
        if request.files:
            body, content_type = form_body(request.params, request.files)
        else:
            body, content_type = _encode(request.params), "application/json"
        accept = "text/event-stream" if request.stream else "*/*"
        relayed = await self.relay("POST", "/" + request.path, body=body, headers={"content-type": content_type, "accept": accept}, stream=request.stream)
        return MediaAnswer("relayed", relayed)


def _unstreamed(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in ("stream", "stream_options")}


def _status_of(body: dict) -> int:
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and 400 <= code < 600 else 500
