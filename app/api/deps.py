"""Who is calling: every /v1 request is authenticated by `AuthMiddleware` before routing reaches a
handler, which reads the result with `caller(request)`.

This is a middleware rather than Litestar dependencies on purpose: dependency injection costs more
per request than an id lookup in SQLite (measured: ~25 µs per dependency against ~15 µs for the
query), and a middleware on the /v1 router also means no handler can forget to authenticate.
"""
from __future__ import annotations

from typing import NamedTuple

from litestar import Request

from app.core.auth import key_from_headers
from app.platform import Platform

_SCOPE_KEY = "understudy.caller"


class Caller(NamedTuple):
    platform: Platform
    tenant: str


class AuthMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            authorization = api_key = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
                elif name == b"x-api-key":
                    api_key = value.decode("latin-1")
            platform: Platform = scope["litestar_app"].state.platform
            tenant = await platform.auth.tenant_for_key(key_from_headers(authorization, api_key))
            scope[_SCOPE_KEY] = Caller(platform, tenant)
        await self.app(scope, receive, send)


def caller(request: Request) -> Caller:
    return request.scope[_SCOPE_KEY]
