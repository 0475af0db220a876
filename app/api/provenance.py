"""/v1/content_provenance_checks: does an uploaded image (or audio file) carry this server's signed
provenance marker? (app/services/provenance.py)"""
from __future__ import annotations

import asyncio

from litestar import Request, post

from app.api.deps import caller
from app.core.errors import invalid_request
from app.core.multipart import FORM_OVERHEAD, bounded, iter_parts

MAX_BYTES = 50 * 1024 * 1024  # OpenAI's image upload limit


@post("/content_provenance_checks", status_code=200, request_max_body_size=None)
async def create_check(request: Request) -> dict:
    platform, _ = caller(request)
    data, unknown = None, None
    async for part in iter_parts(request.headers.get("content-type"), bounded(request, MAX_BYTES + FORM_OVERHEAD)):
        if part.name == "file":
            data = await part.read(MAX_BYTES)
        else:
            unknown = unknown or part.name
            await part.read()
    if data is None:
        raise invalid_request("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
    if unknown is not None:
        raise invalid_request(f"Unknown parameter: '{unknown}'.", param=unknown, code="unknown_parameter")
    return await asyncio.to_thread(platform.provenance.check, data)


PROVENANCE_HANDLERS = [create_check]
