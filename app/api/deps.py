"""Dependencies every controller uses: the platform, and the tenant behind the request's API key."""
from __future__ import annotations

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from app.core.auth import key_from_headers
from app.platform import Platform


def provide_platform(state: State) -> Platform:
    return state.platform


async def provide_tenant(request: Request, platform: Platform) -> str:
    # Depending on `platform` keeps the two dependencies in sequence: Litestar resolves independent
    # ones concurrently in a task group, which costs more than both of them together.
    headers = request.headers
    key = key_from_headers(headers.get("authorization"), headers.get("x-api-key"))
    return await platform.auth.tenant_for_key(key)


DEPENDENCIES = {
    "platform": Provide(provide_platform, sync_to_thread=False),
    "tenant": Provide(provide_tenant),
}
