"""ChatKit (`/v1/chatkit`): sessions with short-lived client secrets, and the threads and items a ChatKit
front end would produce.

A session (`cksess_…`) binds a client secret (`ek_…`) to the tenant, a workflow id and an end user, for
`expires_after.seconds` (at most 600, default 600); it is `active` until it expires or is cancelled.
There is no ChatKit front end here and OpenAI's spec gives no way to write a thread, so threads (`cthr_…`)
and their items (`cthi_…`) are recorded through an Understudy endpoint (`POST
/_understudy/v1/chatkit/threads`) that names an active session: the thread belongs to the session's user.
The public API lists, retrieves and deletes them as OpenAI does.
"""
from __future__ import annotations

import time

from sqlalchemy import delete, insert, select, update

from app.core.errors import APIError, invalid_request
from app.core.ids import new_id
from app.core.pagination import Page, fetch_page, list_body
from storage.chatkit_tables import ChatKitSession, ChatKitThread, ChatKitThreadItem

sessions = ChatKitSession.__table__
threads = ChatKitThread.__table__
items = ChatKitThreadItem.__table__
DEFAULT_TTL = 600
DEFAULT_RPM = 10
MAX_ITEMS = 100


def _config(given: dict) -> dict:
    titling, upload, history = given.get("automatic_thread_titling") or {}, given.get("file_upload") or {}, given.get("history") or {}
    enabled = upload.get("enabled", False)
    return {
        "automatic_thread_titling": {"enabled": titling.get("enabled", True)},
        "file_upload": {"enabled": enabled, "max_file_size": upload.get("max_file_size", 512) if enabled else None,
                        "max_files": upload.get("max_files", 10) if enabled else None},
        "history": {"enabled": history.get("enabled", True), "recent_threads": history.get("recent_threads")},
    }


def _range(value, low: int, high: int | None, param: str) -> None:
    if value is not None and (value < low or (high is not None and value > high)):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise invalid_request(f"Invalid '{param}': integer must be {bound}, got {value}.", param=param,
                              code="integer_below_min_value" if value < low else "integer_above_max_value")


def check_session_params(body: dict) -> None:
    """What the SDK's TypedDict cannot say: lengths and ranges (app/api/chatkit.py checks the shapes)."""
    if not body["user"]:
        raise invalid_request("Invalid 'user': string too short. Expected a string with minimum length 1.", param="user", code="string_too_short")
    if not body["workflow"]["id"]:
        raise invalid_request("Invalid 'workflow.id': string too short. Expected a string with minimum length 1.", param="workflow.id",
                              code="string_too_short")
    if len(body["workflow"].get("state_variables") or {}) > 64:
        raise invalid_request("Invalid 'workflow.state_variables': at most 64 entries.", param="workflow.state_variables", code="invalid_value")
    _range((body.get("expires_after") or {}).get("seconds"), 1, 600, "expires_after.seconds")
    _range((body.get("rate_limits") or {}).get("max_requests_per_1_minute"), 1, None, "rate_limits.max_requests_per_1_minute")
    config = body.get("chatkit_configuration") or {}
    _range((config.get("file_upload") or {}).get("max_file_size"), 1, 512, "chatkit_configuration.file_upload.max_file_size")
    _range((config.get("file_upload") or {}).get("max_files"), 1, None, "chatkit_configuration.file_upload.max_files")
    _range((config.get("history") or {}).get("recent_threads"), 1, None, "chatkit_configuration.history.recent_threads")


def session_body(row, now: float | None = None) -> dict:
    status = row.status
    if status == "active" and row.expires_at <= (now or time.time()):
        status = "expired"
    return {**row.data, "id": row.id, "object": "chatkit.session", "expires_at": row.expires_at, "user": row.user, "status": status}


def thread_body(row) -> dict:
    return {"id": row.id, "object": "chatkit.thread", "created_at": row.created_at, "title": row.data.get("title"),
            "status": row.data.get("status") or {"type": "active"}, "user": row.user}


class ChatKitService:
    def __init__(self, db) -> None:
        self._db = db

    # ---- sessions ----
    async def create_session(self, tenant_id: str, body: dict) -> dict:
        check_session_params(body)
        now = int(time.time())
        workflow = body["workflow"]
        rpm = (body.get("rate_limits") or {}).get("max_requests_per_1_minute", DEFAULT_RPM)
        data = {
            "client_secret": new_id("ek_", 32),
            "workflow": {"id": workflow["id"], "version": workflow.get("version"), "state_variables": workflow.get("state_variables"),
                         "tracing": {"enabled": (workflow.get("tracing") or {}).get("enabled", True)}},
            "rate_limits": {"max_requests_per_1_minute": rpm}, "max_requests_per_1_minute": rpm,
            "chatkit_configuration": _config(body.get("chatkit_configuration") or {}),
        }
        session_id = new_id("cksess_")
        ttl = (body.get("expires_after") or {}).get("seconds", DEFAULT_TTL)
        async with self._db.begin() as conn:
            await conn.execute(insert(sessions).values(id=session_id, tenant_id=tenant_id, created_at=now, expires_at=now + ttl,
                                                       status="active", user=body["user"], data=data))
        return session_body(await self._session(tenant_id, session_id))

    async def _session(self, tenant_id: str, session_id: str, param: str | None = None):
        row = await self._db.fetch_one(select(sessions).where(sessions.c.tenant_id == tenant_id, sessions.c.id == session_id))
        if row is None:
            raise APIError(f"ChatKit session '{session_id}' not found.", status_code=404, param=param)
        return row

    async def cancel_session(self, tenant_id: str, session_id: str) -> dict:
        """An active session is cancelled (its secret stops working); an expired or cancelled one is returned as it is."""
        row = await self._session(tenant_id, session_id)
        if session_body(row)["status"] == "active":
            async with self._db.begin() as conn:
                await conn.execute(update(sessions).where(sessions.c.id == session_id, sessions.c.status == "active").values(status="cancelled"))
            row = await self._session(tenant_id, session_id)
        return session_body(row)

    # ---- threads ----
    async def record_thread(self, tenant_id: str, body: dict) -> dict:
        """A thread with its messages, written for an active session (Understudy's stand-in for the front end)."""
        session_id = body.get("session_id")
        if not isinstance(session_id, str):
            raise invalid_request("Missing required parameter: 'session_id'.", param="session_id", code="missing_required_parameter")
        session = session_body(await self._session(tenant_id, session_id, param="session_id"))
        if session["status"] != "active":
            raise invalid_request(f"ChatKit session '{session_id}' is {session['status']}.", param="session_id", code="session_not_active")
        title = body.get("title")
        if title is not None and (not isinstance(title, str) or len(title) > 512):
            raise invalid_request("Invalid 'title': expected a string of at most 512 characters.", param="title", code="invalid_value")
        messages = body.get("messages", [])
        if not isinstance(messages, list) or len(messages) > MAX_ITEMS:
            raise invalid_request(f"Invalid 'messages': expected an array of at most {MAX_ITEMS} messages.", param="messages", code="invalid_value")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") or not isinstance(m.get("text"), str):
                raise invalid_request(f"Invalid 'messages[{i}]': expected {{'role': 'user' | 'assistant', 'text': string}}.",
                                      param=f"messages[{i}]", code="invalid_value")
        now, thread_id = int(time.time()), new_id("cthr_")
        async with self._db.begin() as conn:
            await conn.execute(insert(threads).values(id=thread_id, tenant_id=tenant_id, user=session["user"], created_at=now,
                                                      data={"title": title, "status": {"type": "active"}, "session_id": session_id}))
            for m in messages:
                item_id = new_id("cthi_")
                common = {"id": item_id, "object": "chatkit.thread_item", "created_at": now, "thread_id": thread_id}
                if m["role"] == "user":
                    data = {**common, "type": "chatkit.user_message", "content": [{"type": "input_text", "text": m["text"]}],
                            "attachments": [], "inference_options": None}
                else:
                    data = {**common, "type": "chatkit.assistant_message", "content": [{"type": "output_text", "text": m["text"], "annotations": []}]}
                await conn.execute(insert(items).values(id=item_id, tenant_id=tenant_id, thread_id=thread_id, created_at=now, data=data))
        return await self.get_thread(tenant_id, thread_id)

    async def _thread(self, tenant_id: str, thread_id: str):
        row = await self._db.fetch_one(select(threads).where(threads.c.tenant_id == tenant_id, threads.c.id == thread_id))
        if row is None:
            raise APIError(f"ChatKit thread '{thread_id}' not found.", status_code=404)
        return row

    async def get_thread(self, tenant_id: str, thread_id: str) -> dict:
        return thread_body(await self._thread(tenant_id, thread_id))

    async def list_threads(self, tenant_id: str, page: Page, user: str | None) -> dict:
        filters = {"tenant_id": tenant_id}
        if user:
            filters["user"] = user
        rows, has_more = await fetch_page(self._db, threads, page, filters)
        return list_body([thread_body(r) for r in rows], has_more)

    async def list_items(self, tenant_id: str, thread_id: str, page: Page) -> dict:
        await self._thread(tenant_id, thread_id)
        rows, has_more = await fetch_page(self._db, items, page, {"tenant_id": tenant_id, "thread_id": thread_id}, columns=(items.c.id, items.c.data))
        return list_body([r.data for r in rows], has_more)

    async def delete_thread(self, tenant_id: str, thread_id: str) -> dict:
        await self._thread(tenant_id, thread_id)
        async with self._db.begin() as conn:
            await conn.execute(delete(items).where(items.c.tenant_id == tenant_id, items.c.thread_id == thread_id))
            await conn.execute(delete(threads).where(threads.c.tenant_id == tenant_id, threads.c.id == thread_id))
        return {"id": thread_id, "object": "chatkit.thread.deleted", "deleted": True}
