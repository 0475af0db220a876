"""Per-project rate limits (requests and tokens per minute) with OpenAI's x-ratelimit-* headers and 429 body.

Only model-calling requests are limited (the paths below). With no limit configured anywhere the
middleware costs one attribute check; otherwise it reads the JSON body (replaying it to the handler),
estimates the request's tokens, takes them from the project's window and adds the headers.
"""
from __future__ import annotations

import asyncio

import msgspec

from app.api.deps import _SCOPE_KEY
from app.services.rate_limits import RateLimiter, duration, estimate_tokens, retry_after_seconds

LIMITED = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
    "/v1/images/generations": "images",
}
_MORE = " Visit https://platform.openai.com/account/rate-limits to learn more."


class RateLimitMiddleware:
    """Runs after AuthMiddleware (the caller's tenant, i.e. its project, is known)."""

    def __init__(self, app) -> None:
        self.app = app
        self._limiter: RateLimiter | None = None  # the platform's, found on the first request

    async def __call__(self, scope, receive, send) -> None:
        limiter = self._limiter
        if limiter is None:
            caller = scope.get(_SCOPE_KEY)
            if caller is None:
                return await self.app(scope, receive, send)
            limiter = self._limiter = caller.platform.rate_limits
        if not limiter.active:  # no limit anywhere: the whole cost of this middleware
            return await self.app(scope, receive, send)
        kind = LIMITED.get(scope["path"]) if scope.get("method") == "POST" else None
        if kind is None:
            return await self.app(scope, receive, send)
        await self._limited(limiter, scope[_SCOPE_KEY].tenant, kind, scope, receive, send)

    async def _limited(self, limiter: RateLimiter, project_id: str, kind: str, scope, receive, send) -> None:
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        try:
            body = msgspec.json.decode(raw)
        except (msgspec.DecodeError, ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):  # the handler answers with its 400
            await self.app(scope, replay, send)
            return
        model = body.get("model") if isinstance(body.get("model"), str) else ""
        limits = limiter.limits_for(project_id, model)
        if not limits.rpm and not limits.tpm:
            await self.app(scope, replay, send)
            return
        tokens = 0
        if limits.tpm:  # a long prompt is counted off the event loop
            tokens = estimate_tokens(kind, body) if len(raw) < 65536 else await asyncio.to_thread(estimate_tokens, kind, body)
        decision = await limiter.take(project_id, limits, tokens)
        if decision is None:  # the counters are out of reach: the request goes through unlimited
            await self.app(scope, replay, send)
            return
        headers = []
        if limits.rpm:
            headers += [(b"x-ratelimit-limit-requests", str(limits.rpm).encode()),
                        (b"x-ratelimit-remaining-requests", str(max(limits.rpm - decision.requests, 0)).encode()),
                        (b"x-ratelimit-reset-requests", duration(decision.reset_ms).encode())]
        if limits.tpm:
            headers += [(b"x-ratelimit-limit-tokens", str(limits.tpm).encode()),
                        (b"x-ratelimit-remaining-tokens", str(max(limits.tpm - decision.tokens, 0)).encode()),
                        (b"x-ratelimit-reset-tokens", duration(decision.reset_ms).encode())]
        if decision.allowed != 1:
            await _refuse(send, headers, project_id, model, limits, decision, tokens)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *headers]}
            await send(message)

        await self.app(scope, replay, send_with_headers)


async def _refuse(send, headers, project_id: str, model: str, limits, decision, tokens: int) -> None:
    wait = duration(decision.reset_ms)
    if decision.allowed == 0:
        kind, what = "requests", f"requests per min (RPM): Limit {limits.rpm}, Used {decision.requests}, Requested 1"
    else:
        kind, what = "tokens", f"tokens per min (TPM): Limit {limits.tpm}, Used {decision.tokens}, Requested {tokens}"
    message = f"Rate limit reached for {model or 'this model'} in project {project_id} on {what}. Please try again in {wait}.{_MORE}"
    body = msgspec.json.encode({"error": {"message": message, "type": kind, "param": None, "code": "rate_limit_exceeded"}})
    await send({"type": "http.response.start", "status": 429, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry_after_seconds(decision.reset_ms)).encode()), *headers,
    ]})
    await send({"type": "http.response.body", "body": body, "more_body": False})
