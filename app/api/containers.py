"""/v1/containers and their files: create (JSON), list, retrieve, delete; a file is a streamed multipart
upload or a JSON `{"file_id"}` copying a File; its content is streamed back."""
from __future__ import annotations

import mimetypes
from urllib.parse import quote

from litestar import Controller, Request, delete, get, post
from litestar.response import Stream
from openai.types import container_create_params

from app.api.deps import caller
from app.core.errors import invalid_request
from app.core.multipart import FORM_OVERHEAD, bounded, iter_parts
from app.core.pagination import page_params, query_int
from app.core.validation import decode_json_object, validate_params


def _page(request: Request):
    query = request.query_params
    return page_params(query_int(query, "limit"), query.get("order"), query.get("after"), query.get("before"))


class ContainersController(Controller):
    path = "/containers"

    @post("/", status_code=200)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        params = validate_params(container_create_params.ContainerCreateParams, decode_json_object(await request.body()))
        return await platform.containers.create(tenant, params)

    @get("/")
    async def list_containers(self, request: Request) -> dict:
        platform, tenant = caller(request)
        return await platform.containers.list(tenant, _page(request), request.query_params.get("name"))

    @get("/{container_id:str}")
    async def retrieve(self, request: Request, container_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.containers.get(tenant, container_id)

    @delete("/{container_id:str}", status_code=200)
    async def delete_container(self, request: Request, container_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.containers.delete(tenant, container_id)

    # --- files ---------------------------------------------------------------------------------------------

    @post("/{container_id:str}/files", status_code=200, request_max_body_size=None)
    async def create_file(self, request: Request, container_id: str) -> dict:
        platform, tenant = caller(request)
        service = platform.containers
        content_type = request.headers.get("content-type") or ""
        if not content_type.startswith("multipart/"):
            body = decode_json_object(b"".join([chunk async for chunk in bounded(request, 64 * 1024)]))
            unknown = next((k for k in body if k != "file_id"), None)
            if unknown is not None:
                raise invalid_request(f"Unknown parameter: '{unknown}'.", param=unknown, code="unknown_parameter")
            file_id = body.get("file_id")
            if not isinstance(file_id, str):
                raise invalid_request("Missing required parameter: 'file' or 'file_id'.", param="file", code="missing_required_parameter")
            return await service.copy_file(tenant, container_id, file_id)
        await service.use(tenant, container_id)  # an unknown or expired container is refused before the body is read
        made = None
        async for part in iter_parts(content_type, bounded(request, service.max_bytes + FORM_OVERHEAD)):
            if part.name == "file_id" and made is None:
                made = await service.copy_file(tenant, container_id, await part.text())
            elif part.name == "file":
                if part.filename is None or made is not None:
                    raise invalid_request("'file' must be a single file upload (a part with a filename).", param="file")
                made = await service.add_file(tenant, container_id, part.filename, part)
            else:
                raise invalid_request(f"Unknown parameter: '{part.name}'.", param=part.name, code="unknown_parameter")
        if made is None:
            raise invalid_request("Missing required parameter: 'file' or 'file_id'.", param="file", code="missing_required_parameter")
        return made

    @get("/{container_id:str}/files")
    async def list_files(self, request: Request, container_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.containers.list_files(tenant, container_id, _page(request))

    @get("/{container_id:str}/files/{file_id:str}")
    async def retrieve_file(self, request: Request, container_id: str, file_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.containers.get_file(tenant, container_id, file_id)

    @delete("/{container_id:str}/files/{file_id:str}", status_code=200)
    async def delete_file(self, request: Request, container_id: str, file_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.containers.delete_file(tenant, container_id, file_id)

    @get("/{container_id:str}/files/{file_id:str}/content")
    async def content(self, request: Request, container_id: str, file_id: str) -> Stream:
        platform, tenant = caller(request)
        row, chunks = await platform.containers.content(tenant, container_id, file_id)
        name = row.path.rsplit("/", 1)[-1]
        return Stream(chunks, media_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
                      headers={"Content-Length": str(row.bytes), "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


CONTAINERS_HANDLERS: list = [ContainersController]
