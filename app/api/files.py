"""/v1/files: create (streamed multipart), list, retrieve, delete, content."""
from __future__ import annotations

import mimetypes
from urllib.parse import quote

from litestar import Controller, Request, delete, get, post
from litestar.response import Stream
from litestar.types import ASGIApp

from app.core.errors import invalid_request
from app.core.multipart import FORM_OVERHEAD, bounded, iter_parts
from app.core.pagination import page_params, query_int
from app.api.deps import caller
from app.api.json_body import JSONBody
from app.services.files import check_purpose

_FIELDS = {"file", "purpose", "expires_after[anchor]", "expires_after[seconds]"}
# OpenAI's files list defaults to (and allows up to) 10,000 items per page.
FILES_PAGE_MAX = 10_000
mimetypes.add_type("application/jsonl", ".jsonl")


def _expires_after(fields: dict[str, str]) -> dict | None:
    anchor, seconds = fields.get("expires_after[anchor]"), fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    try:
        return {"anchor": anchor, "seconds": int(seconds) if seconds is not None else None}
    except ValueError:
        raise invalid_request(
            f"Invalid type for 'expires_after.seconds': expected an integer, but got '{seconds}'.",
            param="expires_after.seconds", code="invalid_type",
        ) from None


def content_type_for(filename: str, declared: str | None) -> str:
    if declared and declared != "application/octet-stream":
        return declared
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


class FilesController(Controller):
    path = "/files"

    @post("/", status_code=200, request_max_body_size=None)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        fields: dict[str, str] = {}
        staged = None
        filename = mime_type = unknown = None
        try:
            body = bounded(request, platform.settings.max_file_bytes + FORM_OVERHEAD)
            async for part in iter_parts(request.headers.get("content-type"), body):
                if part.name not in _FIELDS:  # reported after a missing 'file', as OpenAI does
                    unknown = unknown or part.name
                    continue
                if part.name != "file":
                    fields[part.name] = await part.text()
                    continue
                if part.filename is None or staged is not None:
                    raise invalid_request("'file' must be a single file upload (a part with a filename).", param="file")
                if "purpose" in fields:  # fail before reading the body when we already can
                    check_purpose(fields["purpose"])
                filename, mime_type = part.filename, part.content_type
                staged = await platform.files.stage(tenant, part)
        except BaseException:
            if staged is not None:
                await platform.files.discard(staged)
            raise
        if staged is None:
            raise invalid_request("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        try:
            if unknown is not None:
                raise invalid_request(f"Unknown parameter: '{unknown}'.", param=unknown, code="unknown_parameter")
            if fields.get("purpose") == "batch" and not (filename or "").lower().endswith(".jsonl"):
                raise invalid_request("Invalid file format for Batch API. Must be .jsonl", param="file", code="invalid_file_format")
            expires_after = _expires_after(fields)
        except BaseException:
            await platform.files.discard(staged)
            raise
        return await platform.files.commit(
            tenant, staged, filename=filename, purpose=fields.get("purpose"), expires_after=expires_after, mime_type=mime_type
        )

    @get("/")
    async def list_files(self, request: Request) -> ASGIApp:
        # Query parameters read here rather than declared: Litestar's per-parameter parsing cost more than
        # the rest of the handler on this hot path.
        platform, tenant = caller(request)
        query = request.query_params
        page = page_params(query_int(query, "limit"), query.get("order"), query.get("after"), query.get("before"),
                           default_limit=FILES_PAGE_MAX, max_limit=FILES_PAGE_MAX)
        return JSONBody(await platform.files.list(tenant, page, query.get("purpose")))

    @get("/{file_id:str}")
    async def retrieve(self, request: Request, file_id: str) -> ASGIApp:
        platform, tenant = caller(request)
        return JSONBody(await platform.files.get(tenant, file_id))

    @delete("/{file_id:str}", status_code=200)
    async def delete_file(self, request: Request, file_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.files.delete(tenant, file_id)

    @get("/{file_id:str}/content")
    async def content(self, request: Request, file_id: str) -> Stream:
        platform, tenant = caller(request)
        row, chunks = await platform.files.content(tenant, file_id)
        return Stream(
            chunks,
            media_type=content_type_for(row.filename, row.mime_type),
            headers={
                "Content-Length": str(row.bytes),
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(row.filename)}",
            },
        )
