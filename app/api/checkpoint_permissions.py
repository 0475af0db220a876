"""/v1/fine_tuning/checkpoints/{checkpoint}/permissions: create, list, delete.

OpenAI wants an admin key here. In keys mode the handlers sit outside the /v1 auth middleware (an admin key
is no project key) and check the admin key as /v1/organization does; the checkpoint may then belong to any
project. In open mode any key works and the checkpoint must be the caller's own.
"""
from __future__ import annotations

from litestar import Request, Router, delete, get, post

from app.api.admin_auth import require_admin
from app.core.auth import key_from_headers
from app.core.errors import invalid_request
from app.core.pagination import page_params, query_int
from app.core.validation import decode_json_object

_ORDERS = {None: "desc", "": "desc", "descending": "desc", "ascending": "asc"}


async def _owner(request: Request, checkpoint: str) -> tuple:
    platform = request.app.state.platform
    if platform.auth.mode == "keys":
        await require_admin(request)
        tenant = None
    else:
        key = key_from_headers(request.headers.get("authorization"), request.headers.get("x-api-key"))
        tenant = await platform.auth.tenant_for_key(key)
    return platform.checkpoint_permissions, await platform.checkpoint_permissions.owner(checkpoint, tenant)


@post("/{checkpoint:str}/permissions", status_code=200)
async def create_permissions(request: Request, checkpoint: str) -> dict:
    service, owner = await _owner(request, checkpoint)
    return await service.create(owner, checkpoint, decode_json_object(await request.body()))


@get("/{checkpoint:str}/permissions")
async def list_permissions(request: Request, checkpoint: str) -> dict:
    query = request.query_params
    order = query.get("order")
    if order not in _ORDERS:
        raise invalid_request(f"Invalid value: '{order}'. Supported values are: 'ascending' and 'descending'.", param="order", code="invalid_value")
    limit = query_int(query, "limit")
    page = page_params(10 if limit is None else limit, _ORDERS[order], query.get("after"))
    service, owner = await _owner(request, checkpoint)
    return await service.list(owner, checkpoint, page, query.get("project_id"))


@delete("/{checkpoint:str}/permissions/{permission_id:str}", status_code=200)
async def delete_permission(request: Request, checkpoint: str, permission_id: str) -> dict:
    service, owner = await _owner(request, checkpoint)
    return await service.delete(owner, checkpoint, permission_id)


checkpoint_permissions_router = Router(path="/v1/fine_tuning/checkpoints",
                                       route_handlers=[create_permissions, list_permissions, delete_permission])
