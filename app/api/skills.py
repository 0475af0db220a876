"""/v1/skills and their versions: create (multipart `files`: one zip, or a directory's files), list, retrieve,
update (the default version), delete, and the zip downloads."""
from __future__ import annotations

from urllib.parse import quote

from litestar import Controller, Request, Response, delete, get, post
from python_multipart.multipart import parse_options_header

from app.api.deps import caller
from app.core.errors import invalid_request
from app.core.multipart import FORM_OVERHEAD, bounded, iter_parts
from app.core.pagination import page_params, query_int
from app.core.validation import decode_json_object
from app.services.skills.bundle import too_large

_FILE_FIELDS = ("files", "files[]")


def _raw_filename(part) -> str | None:
    """The part's filename as sent: for a directory upload it is the file's path inside the skill (the
    multipart helper's `filename` keeps only the last component)."""
    _, options = parse_options_header(part.headers.get("content-disposition", ""))
    raw = options.get(b"filename")
    return None if raw is None else raw.decode("utf-8", "replace")


async def _read_form(request: Request, max_bytes: int, *, with_default: bool) -> tuple[list[tuple[str | None, bytes]], bool]:
    parts: list[tuple[str | None, bytes]] = []
    make_default, unknown, total = False, None, 0
    body = bounded(request, max_bytes + FORM_OVERHEAD)
    async for part in iter_parts(request.headers.get("content-type"), body):
        if part.name in _FILE_FIELDS:
            data = bytearray()
            async for chunk in part:
                data += chunk
                total += len(chunk)
                if total > max_bytes:
                    raise too_large(max_bytes)
            parts.append((_raw_filename(part), bytes(data)))
        elif part.name == "default" and with_default:
            value = (await part.text()).strip().lower()
            if value not in ("true", "false", "1", "0"):
                raise invalid_request(f"Invalid value for 'default': expected a boolean, but got '{value}'.", param="default", code="invalid_type")
            make_default = value in ("true", "1")
        else:
            unknown = unknown or part.name
    if not parts:
        raise invalid_request("Missing required parameter: 'files'.", param="files", code="missing_required_parameter")
    if unknown is not None:
        raise invalid_request(f"Unknown parameter: '{unknown}'.", param=unknown, code="unknown_parameter")
    return parts, make_default


def _zip(filename: str, data: bytes) -> Response:
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})


def _page(request: Request):
    query = request.query_params
    return page_params(query_int(query, "limit"), query.get("order"), query.get("after"))


class SkillsController(Controller):
    path = "/skills"

    @post("/", status_code=200, request_max_body_size=None)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        parts, _ = await _read_form(request, platform.skills.max_bytes, with_default=False)
        return await platform.skills.create(tenant, parts)

    @get("/")
    async def list_skills(self, request: Request) -> dict:
        platform, tenant = caller(request)
        return await platform.skills.list(tenant, _page(request))

    @get("/{skill_id:str}")
    async def retrieve(self, request: Request, skill_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.skills.get(tenant, skill_id)

    @post("/{skill_id:str}", status_code=200)
    async def update(self, request: Request, skill_id: str) -> dict:
        platform, tenant = caller(request)
        body = decode_json_object(await request.body())
        if body.get("default_version") is None:
            raise invalid_request("Missing required parameter: 'default_version'.", param="default_version", code="missing_required_parameter")
        if not isinstance(body["default_version"], (str, int)) or isinstance(body["default_version"], bool):
            raise invalid_request("Invalid type for 'default_version': expected a string.", param="default_version", code="invalid_type")
        unknown = next((k for k in body if k != "default_version"), None)
        if unknown is not None:
            raise invalid_request(f"Unknown parameter: '{unknown}'.", param=unknown, code="unknown_parameter")
        return await platform.skills.update(tenant, skill_id, body["default_version"])

    @delete("/{skill_id:str}", status_code=200)
    async def delete_skill(self, request: Request, skill_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.skills.delete(tenant, skill_id)

    @get("/{skill_id:str}/content")
    async def content(self, request: Request, skill_id: str) -> Response:
        platform, tenant = caller(request)
        return _zip(*await platform.skills.content(tenant, skill_id))

    @post("/{skill_id:str}/versions", status_code=200, request_max_body_size=None)
    async def create_version(self, request: Request, skill_id: str) -> dict:
        platform, tenant = caller(request)
        await platform.skills.get(tenant, skill_id)  # an unknown skill is a 404 before its files are read
        parts, make_default = await _read_form(request, platform.skills.max_bytes, with_default=True)
        return await platform.skills.create_version(tenant, skill_id, parts, make_default)

    @get("/{skill_id:str}/versions")
    async def list_versions(self, request: Request, skill_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.skills.list_versions(tenant, skill_id, _page(request))

    @get("/{skill_id:str}/versions/{version:str}")
    async def retrieve_version(self, request: Request, skill_id: str, version: str) -> dict:
        platform, tenant = caller(request)
        return await platform.skills.get_version(tenant, skill_id, version)

    @delete("/{skill_id:str}/versions/{version:str}", status_code=200)
    async def delete_version(self, request: Request, skill_id: str, version: str) -> dict:
        platform, tenant = caller(request)
        return await platform.skills.delete_version(tenant, skill_id, version)

    @get("/{skill_id:str}/versions/{version:str}/content")
    async def version_content(self, request: Request, skill_id: str, version: str) -> Response:
        platform, tenant = caller(request)
        return _zip(*await platform.skills.version_content(tenant, skill_id, version))
