"""The admin key guard for /v1/organization/*: `UNDERSTUDY_ADMIN_KEY`, or an admin key issued through
/v1/organization/admin_api_keys (or `understudy keys create --admin`), stored hashed."""
from __future__ import annotations

import hmac

from litestar import Request

from app.core.auth import key_from_headers
from app.core.errors import APIError
from app.services.api_keys import ApiKeysService


def admin_keys(request: Request) -> ApiKeysService:
    return request.app.state.platform.api_keys


async def require_admin(request: Request) -> None:
    platform = request.app.state.platform
    key = key_from_headers(request.headers.get("authorization"), request.headers.get("x-api-key"))
    admin_key = platform.settings.admin_key
    if admin_key and hmac.compare_digest(key.encode(), admin_key.encode()):
        return
    if await admin_keys(request).is_admin_key(key):
        return
    raise APIError("This endpoint needs an admin API key.", status_code=401, code="invalid_api_key")
