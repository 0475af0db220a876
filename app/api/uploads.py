"""/v1/uploads: create, add parts (streamed multipart), complete, cancel."""
from __future__ import annotations

from litestar import Controller, Request, post
from openai.types import upload_complete_params, upload_create_params

from app.core.errors import invalid_request
from app.core.multipart import FORM_OVERHEAD, bounded, iter_parts
from app.core.validation import parse_json_params
from app.api.deps import caller


class UploadsController(Controller):
    path = "/uploads"

    @post("/", status_code=200)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        params = parse_json_params(upload_create_params.UploadCreateParams, await request.body())
        return await platform.uploads.create(tenant, params)

    @post("/{upload_id:str}/parts", status_code=200, request_max_body_size=None)
    async def add_part(self, request: Request, upload_id: str) -> dict:
        platform, tenant = caller(request)
        part_object = None
        body = bounded(request, platform.settings.max_part_bytes + FORM_OVERHEAD)
        async for part in iter_parts(request.headers.get("content-type"), body):
            if part.name != "data":
                raise invalid_request(f"Unknown parameter: '{part.name}'.", param=part.name, code="unknown_parameter")
            if part_object is not None:
                raise invalid_request("Only one 'data' part may be sent per request.", param="data")
            part_object = await platform.uploads.add_part(tenant, upload_id, part)
        if part_object is None:
            raise invalid_request("Missing required parameter: 'data'.", param="data", code="missing_required_parameter")
        return part_object

    @post("/{upload_id:str}/complete", status_code=200)
    async def complete(self, request: Request, upload_id: str) -> dict:
        platform, tenant = caller(request)
        params = parse_json_params(upload_complete_params.UploadCompleteParams, await request.body())
        return await platform.uploads.complete(tenant, upload_id, list(params["part_ids"]), params.get("md5"))

    @post("/{upload_id:str}/cancel", status_code=200)
    async def cancel(self, request: Request, upload_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.uploads.cancel(tenant, upload_id)
