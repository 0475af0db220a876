"""/v1/organization/projects, …/api_keys, /v1/organization/admin_api_keys: OpenAI's admin API shapes.

Mounted without the tenant AuthMiddleware: every handler checks the admin key first. One extension:
`POST /v1/organization/projects/{id}/api_keys` issues a project key (OpenAI's admin API cannot), answering
the ProjectApiKey object plus its secret `value`, shown this once.
"""
from __future__ import annotations

from litestar import Request, delete, get, post

from app.api.admin_auth import admin_keys, require_admin
from app.core.pagination import page_params
from app.core.validation import decode_json_object
from app.services.projects import ProjectsService


async def _body(request: Request) -> dict:
    raw = await request.body()
    return decode_json_object(raw) if raw.strip() else {}


def _projects(request: Request) -> ProjectsService:
    return request.app.state.platform.api_keys.projects


@post("/projects", status_code=200)
async def create_project(request: Request) -> dict:
    await require_admin(request)
    return await _projects(request).create(await _body(request))


@get("/projects")
async def list_projects(request: Request, limit: int | None = None, after: str | None = None, include_archived: bool = False) -> dict:
    await require_admin(request)
    return await _projects(request).list(page_params(limit, "asc", after), include_archived)


@get("/projects/{project_id:str}")
async def retrieve_project(request: Request, project_id: str) -> dict:
    await require_admin(request)
    return await _projects(request).get(project_id)


@post("/projects/{project_id:str}", status_code=200)
async def modify_project(request: Request, project_id: str) -> dict:
    await require_admin(request)
    return await _projects(request).modify(project_id, await _body(request))


@post("/projects/{project_id:str}/archive", status_code=200)
async def archive_project(request: Request, project_id: str) -> dict:
    await require_admin(request)
    body = await _projects(request).archive(project_id)
    request.app.state.platform.auth.forget({"project_id": project_id})  # this process at once; others via the bus
    return body


@post("/projects/{project_id:str}/api_keys", status_code=200)
async def issue_project_key(request: Request, project_id: str) -> dict:
    await require_admin(request)
    return await admin_keys(request).issue_project_key(project_id, await _body(request))


@get("/projects/{project_id:str}/api_keys")
async def list_project_keys(request: Request, project_id: str, limit: int | None = None, after: str | None = None,
                            owner_project_access: str | None = None) -> dict:
    await require_admin(request)
    return await admin_keys(request).list_project_keys(project_id, page_params(limit, "asc", after))


@get("/projects/{project_id:str}/api_keys/{api_key_id:str}")
async def retrieve_project_key(request: Request, project_id: str, api_key_id: str) -> dict:
    await require_admin(request)
    return await admin_keys(request).get_project_key(project_id, api_key_id)


@delete("/projects/{project_id:str}/api_keys/{api_key_id:str}", status_code=200)
async def delete_project_key(request: Request, project_id: str, api_key_id: str) -> dict:
    await require_admin(request)
    body = await admin_keys(request).delete_project_key(project_id, api_key_id)
    request.app.state.platform.auth.forget({"key_id": api_key_id})  # this process at once; others via the bus
    return body


@post("/admin_api_keys", status_code=200)
async def create_admin_key(request: Request) -> dict:
    await require_admin(request)
    return await admin_keys(request).create_admin_key(await _body(request))


@get("/admin_api_keys")
async def list_admin_keys(request: Request, limit: int | None = None, after: str | None = None, order: str | None = None) -> dict:
    await require_admin(request)
    return await admin_keys(request).list_admin_keys(page_params(limit, order or "asc", after))


@get("/admin_api_keys/{key_id:str}")
async def retrieve_admin_key(request: Request, key_id: str) -> dict:
    await require_admin(request)
    return await admin_keys(request).get_admin_key(key_id)


@delete("/admin_api_keys/{key_id:str}", status_code=200)
async def delete_admin_key(request: Request, key_id: str) -> dict:
    await require_admin(request)
    return await admin_keys(request).delete_admin_key(key_id)


ADMIN_HANDLERS: list = [
    create_project, list_projects, retrieve_project, modify_project, archive_project,
    issue_project_key, list_project_keys, retrieve_project_key, delete_project_key,
    create_admin_key, list_admin_keys, retrieve_admin_key, delete_admin_key,
]
