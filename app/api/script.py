"""Understudy's control API for scripted answers (under `/_understudy/v1`, a prefix OpenAI does not use,
with the caller's own key: rules and calls are the tenant's): rules, the tenant's settings, and the log
of the model calls it made with the rule that answered each."""
from __future__ import annotations

from litestar import Request, delete, get, post

from app.api.deps import caller
from app.core.errors import too_large
from app.core.validation import decode_json_object

_MAX_BODY = 4 * 1024 * 1024


def _listed(data: list[dict]) -> dict:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": False}


async def _body(request: Request) -> dict | list:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise too_large(f"A rules request may be at most {_MAX_BODY} bytes.")
    return decode_json_object(raw)


@post("/rules", status_code=200, request_max_body_size=_MAX_BODY)
async def create_rules(request: Request) -> dict:
    """One rule (answered with the rule) or `{"rules": [...]}` (answered with a list), tried before the
    script file's, in the order given."""
    platform, tenant = caller(request)
    body = await _body(request)
    created = await platform.script.add_rules(tenant, body)
    return _listed(created) if "rules" in body else created[0]


@get("/rules")
async def list_rules(request: Request) -> dict:
    platform, tenant = caller(request)
    return _listed(await platform.script.list_rules(tenant))


@get("/rules/{rule_id:str}")
async def retrieve_rule(request: Request, rule_id: str) -> dict:
    platform, tenant = caller(request)
    return await platform.script.get_rule(tenant, rule_id)


@delete("/rules/{rule_id:str}", status_code=200)
async def delete_rule(request: Request, rule_id: str) -> dict:
    platform, tenant = caller(request)
    return await platform.script.delete_rule(tenant, rule_id)


@delete("/rules", status_code=200)
async def clear_rules(request: Request) -> dict:
    platform, tenant = caller(request)
    return await platform.script.clear_rules(tenant)


@get("/script")
async def script_settings(request: Request) -> dict:
    platform, tenant = caller(request)
    return await platform.script.settings(tenant)


@post("/script", status_code=200, request_max_body_size=_MAX_BODY)
async def update_script_settings(request: Request) -> dict:
    """`{"strict": true}`: calls no rule matches are refused (404); `{"record_calls": true}`: the calls
    are logged even without rules."""
    platform, tenant = caller(request)
    return await platform.script.update_settings(tenant, await _body(request))


@get("/calls")
async def list_calls(request: Request) -> dict:
    """The tenant's model calls, oldest first (the newest 500 are kept), each with the rule that answered."""
    platform, tenant = caller(request)
    return _listed(await platform.script.calls(tenant))


@delete("/calls", status_code=200)
async def clear_calls(request: Request) -> dict:
    platform, tenant = caller(request)
    await platform.script.state.clear_calls(tenant)
    return {"object": "understudy.calls.deleted", "deleted": True}


SCRIPT_HANDLERS: list = [create_rules, list_rules, retrieve_rule, delete_rule, clear_rules, script_settings,
                         update_script_settings, list_calls, clear_calls]
