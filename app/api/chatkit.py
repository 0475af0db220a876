"""/v1/chatkit: sessions (create, cancel), threads (list, retrieve, delete) and their items; and Understudy's
`POST /_understudy/v1/chatkit/threads`, which records a thread for an active session (there is no ChatKit
front end here to produce one)."""
from __future__ import annotations

from litestar import Request, delete, get, post
from openai.types.beta.chatkit import session_create_params

from app.api.deps import caller
from app.core.pagination import list_body, page_params, query_int
from app.core.validation import decode_json_object, validate_params


def _page(request: Request):
    """The page asked for; the spec allows `limit=0` here (an empty page saying whether there is more)."""
    query = request.query_params
    limit = query_int(query, "limit")
    return page_params(1 if limit == 0 else limit, query.get("order"), query.get("after"), query.get("before")), limit == 0


def _shown(body: dict, empty: bool) -> dict:
    return list_body([], bool(body["data"])) if empty else body


@post("/chatkit/sessions", status_code=200)
async def create_session(request: Request) -> dict:
    platform, tenant = caller(request)
    body = decode_json_object(await request.body())
    validate_params(session_create_params.SessionCreateParams, body)
    return await platform.chatkit.create_session(tenant, body)


@post("/chatkit/sessions/{session_id:str}/cancel", status_code=200)
async def cancel_session(request: Request, session_id: str) -> dict:
    platform, tenant = caller(request)
    return await platform.chatkit.cancel_session(tenant, session_id)


@get("/chatkit/threads")
async def list_threads(request: Request) -> dict:
    platform, tenant = caller(request)
    page, empty = _page(request)
    return _shown(await platform.chatkit.list_threads(tenant, page, request.query_params.get("user")), empty)


@get("/chatkit/threads/{thread_id:str}")
async def retrieve_thread(request: Request, thread_id: str) -> dict:
    platform, tenant = caller(request)
    return await platform.chatkit.get_thread(tenant, thread_id)


@delete("/chatkit/threads/{thread_id:str}", status_code=200)
async def delete_thread(request: Request, thread_id: str) -> dict:
    platform, tenant = caller(request)
    return await platform.chatkit.delete_thread(tenant, thread_id)


@get("/chatkit/threads/{thread_id:str}/items")
async def list_items(request: Request, thread_id: str) -> dict:
    platform, tenant = caller(request)
    page, empty = _page(request)
    return _shown(await platform.chatkit.list_items(tenant, thread_id, page), empty)


@post("/chatkit/threads", status_code=200)
async def record_thread(request: Request) -> dict:
    platform, tenant = caller(request)
    return await platform.chatkit.record_thread(tenant, decode_json_object(await request.body()))


CHATKIT_HANDLERS = [create_session, cancel_session, list_threads, retrieve_thread, delete_thread, list_items]
CHATKIT_UNDERSTUDY_HANDLERS = [record_thread]
