"""The admin key guard for /v1/organization/*: `UNDERSTUDY_ADMIN_KEY` (and, in keys mode, issued admin keys)."""
from __future__ import annotations

import hmac

from litestar import Request

from app.core.auth import key_from_headers
from app.core.errors import APIError


async def require_admin(request: Request) -> None:
    platform = request.app.state.platform
    key = key_from_headers(request.headers.get("authorization"), request.headers.get("x-api-key"))
    admin_key = platform.settings.admin_key
    if not admin_key or not hmac.compare_digest(key.encode(), admin_key.encode()):
        raise APIError("This endpoint needs an admin API key.", status_code=401, code="invalid_api_key")
