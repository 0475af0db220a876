"""/v1/videos: create (multipart or JSON), list, retrieve, delete, content variants, remix, edits,
extensions and characters. The SDK sends create, edits, extensions and characters as multipart even
without a file; a JSON body is taken too, as the spec allows."""
from __future__ import annotations

from typing import Optional

from litestar import Controller, Request, Response, delete, get, post
from typing_extensions import TypedDict

from app.api.deps import caller
from app.api.images import read_form
from app.core.pagination import page_params
from app.core.validation import parse_json_params
from app.inference.base import MediaFile


class _ImageRef(TypedDict, total=False):
    image_url: str
    file_id: str


class _VideoRef(TypedDict, total=False):
    id: str


class _CreateBody(TypedDict, total=False):
    prompt: str
    model: str
    seconds: str
    size: str
    input_reference: _ImageRef


class _RemixBody(TypedDict, total=False):
    prompt: str


class _EditBody(TypedDict, total=False):
    prompt: str
    video: _VideoRef


class _ExtendBody(_EditBody, total=False):
    seconds: str


class _CharacterBody(TypedDict, total=False):
    name: str


def _is_form(request: Request) -> bool:
    return (request.headers.get("content-type") or "").lower().startswith("multipart/form-data")


async def _body(request: Request, params_type, file_field: str | None, file_limit: int) -> tuple[dict, MediaFile | None]:
    """The params and the one file part (if the request is multipart and has one)."""
    if not _is_form(request):
        return parse_json_params(params_type, await request.body()), None
    fields = {file_field: 1} if file_field else {}
    params, files = await read_form(request, params_type, fields, file_limit=file_limit, body_limit=file_limit + 1024 * 1024)
    upload = next((MediaFile(f.name, f.filename, f.content_type, f.data) for f in files), None)
    return params, upload


class VideosController(Controller):
    path = "/videos"

    @post("/", status_code=200, request_max_body_size=None)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        service = platform.videos
        params, upload = await _body(request, _CreateBody, "input_reference", service.max_reference_bytes + 1)
        return await service.create(tenant, params, upload)

    @get("/")
    async def list_videos(self, request: Request, limit: Optional[int] = None, order: Optional[str] = None, after: Optional[str] = None) -> dict:
        platform, tenant = caller(request)
        return await platform.videos.list(tenant, page_params(limit, order or "desc", after))

    @post("/characters", status_code=200, request_max_body_size=None)
    async def create_character(self, request: Request) -> dict:
        platform, tenant = caller(request)
        service = platform.videos
        params, upload = await _body(request, _CharacterBody, "video", service.max_clip_bytes + 1)
        return await service.create_character(tenant, params.get("name"), upload)

    @get("/characters/{character_id:str}")
    async def get_character(self, request: Request, character_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.videos.get_character(tenant, character_id)

    @post("/edits", status_code=200, request_max_body_size=None)
    async def edit(self, request: Request) -> dict:
        platform, tenant = caller(request)
        service = platform.videos
        params, upload = await _body(request, _EditBody, "video", service.max_clip_bytes + 1)
        return await service.edit(tenant, params, upload)

    @post("/extensions", status_code=200, request_max_body_size=None)
    async def extend(self, request: Request) -> dict:
        platform, tenant = caller(request)
        service = platform.videos
        params, upload = await _body(request, _ExtendBody, "video", service.max_clip_bytes + 1)
        return await service.extend(tenant, params, upload)

    @get("/{video_id:str}")
    async def retrieve(self, request: Request, video_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.videos.get(tenant, video_id)

    @delete("/{video_id:str}", status_code=200)
    async def delete_video(self, request: Request, video_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.videos.delete(tenant, video_id)

    @get("/{video_id:str}/content")
    async def content(self, request: Request, video_id: str, variant: Optional[str] = None) -> Response:
        platform, tenant = caller(request)
        data, media_type = await platform.videos.content(tenant, video_id, variant)
        return Response(data, media_type=media_type)

    @post("/{video_id:str}/remix", status_code=200)
    async def remix(self, request: Request, video_id: str) -> dict:
        platform, tenant = caller(request)
        params, _ = await _body(request, _RemixBody, None, 1024 * 1024)
        return await platform.videos.remix(tenant, video_id, params)


VIDEOS_HANDLERS: list = [VideosController]
