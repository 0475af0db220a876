"""/v1/organization/usage/completions (and …/embeddings): usage per project and model, in OpenAI's shape;
/v1/organization/projects/{id}/rate_limits: a project's own rate limits. Admin endpoints: each handler
checks the admin key (they are mounted without the tenant AuthMiddleware)."""
from __future__ import annotations

from litestar import Request, get, post

from app.api.admin_auth import require_admin
from app.core.validation import decode_json_object


def _query(request: Request) -> dict[str, list[str]]:
    return {name: request.query_params.getall(name) for name in request.query_params.keys()}


@get("/usage/completions")
async def usage_completions(request: Request) -> dict:
    await require_admin(request)
    return await request.app.state.platform.usage.report("completions", _query(request))


@get("/usage/embeddings")
async def usage_embeddings(request: Request) -> dict:
    await require_admin(request)
    return await request.app.state.platform.usage.report("embeddings", _query(request))


@get("/projects/{project_id:str}/rate_limits")
async def list_rate_limits(request: Request, project_id: str, limit: int = 100, after: str | None = None) -> dict:
    await require_admin(request)
    return await request.app.state.platform.rate_limits.list(project_id, limit, after)


@post("/projects/{project_id:str}/rate_limits/{rate_limit_id:str}", status_code=200)
async def modify_rate_limit(request: Request, project_id: str, rate_limit_id: str) -> dict:
    await require_admin(request)
    raw = await request.body()
    return await request.app.state.platform.rate_limits.modify(project_id, rate_limit_id, decode_json_object(raw) if raw.strip() else {})


USAGE_HANDLERS: list = [usage_completions, usage_embeddings, list_rate_limits, modify_rate_limit]
