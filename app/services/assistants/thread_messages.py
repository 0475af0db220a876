"""Messages of a thread: create, list (also by run), retrieve, update metadata, delete.

A message is made in two steps: `draft` checks and shapes it (content parts, attachments, metadata) and
writes nothing; `write` stores drafts. Files attached for file_search go into the thread's vector
store, which is created (and recorded in the thread's tool_resources) on first need, as OpenAI does.
Threads use the same two steps to create their initial messages in the thread's own transaction.
"""
from __future__ import annotations

import time

from sqlalchemy import bindparam, delete, insert, or_, select, update

from app.core.errors import invalid_request
from app.core.ids import check_prefix, new_id
from app.core.metadata import check_metadata
from app.core.pagination import Page, fetch_page, list_body
from app.services.assistants.tool_resources import ToolResources, check_file, no_object
from storage.db import Database
from storage.models import ACTIVE_RUN_STATUSES, Run, Thread, ThreadMessage
from storage.prepared import Prepared

messages = ThreadMessage.__table__
threads = Thread.__table__
runs = Run.__table__
_GET = Prepared(select(messages.c.data).where(messages.c.id == bindparam("id"), messages.c.tenant_id == bindparam("tenant_id")))
_THREAD = Prepared(select(threads.c.data).where(threads.c.id == bindparam("id"), threads.c.tenant_id == bindparam("tenant_id")))
# Equalities rather than IN: a Prepared statement is compiled once, without expanding parameters.
_ACTIVE_RUN = Prepared(
    select(runs.c.id).where(runs.c.thread_id == bindparam("thread_id"), or_(*(runs.c.status == status for status in ACTIVE_RUN_STATUSES))).limit(1)
)
PART_TYPES = ("image_file", "image_url", "text")


def precheck(message, prefix: str = "") -> None:
    """Content parts of an unknown type, reported with OpenAI's wording before the TypedDict union
    (whose per-branch errors would name a missing field instead)."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        for index, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") not in PART_TYPES:
                where = f"{prefix}content[{index}].type"
                if "type" not in part:
                    raise invalid_request(f"Missing required parameter: '{where}'.", param=where, code="missing_required_parameter")
                raise invalid_request(f"Invalid value: '{part['type']}'. Supported values are: 'image_file', 'image_url', and 'text'.",
                                      param=where, code="invalid_value")


def text_part(value: str) -> dict:
    return {"type": "text", "text": {"value": value, "annotations": []}}


def message_object(thread_id: str, *, role: str, content: list[dict], run_id=None, assistant_id=None, attachments=None,
                   metadata=None, status: str = "completed", created_at: int | None = None) -> dict:
    now = created_at or int(time.time())
    return {
        "id": new_id("msg_"), "object": "thread.message", "created_at": now, "assistant_id": assistant_id, "thread_id": thread_id,
        "run_id": run_id, "role": role, "content": content, "attachments": attachments or [], "metadata": metadata or {},
        "status": status, "completed_at": now if status == "completed" else None, "incomplete_at": None, "incomplete_details": None,
    }


def file_search_files(drafts: list[dict]) -> list[str]:
    """The files the drafts attach for file_search, in order, once each."""
    ids = [a["file_id"] for d in drafts for a in d["attachments"] if any(t["type"] == "file_search" for t in a["tools"])]
    return list(dict.fromkeys(ids))


def search_store(thread: dict) -> str | None:
    ids = ((thread.get("tool_resources") or {}).get("file_search") or {}).get("vector_store_ids") or []
    return ids[0] if ids else None


class ThreadMessagesService:
    def __init__(self, db: Database, files, vector_stores) -> None:
        self._db, self._files, self._vector_stores = db, files, vector_stores
        self._resources = ToolResources(files, vector_stores)

    async def thread(self, tenant_id: str, thread_id: str) -> dict:
        check_prefix(thread_id, "thread_", "thread_id")
        row = await self._db.fetch_one(_THREAD, {"id": thread_id, "tenant_id": tenant_id})
        if row is None:
            raise no_object("thread", thread_id, "thread_id")
        return row.data

    # ---- making messages ----

    async def draft(self, tenant_id: str, params: dict, prefix: str = "") -> dict:
        """A checked message, not yet stored: role, content parts, attachments, metadata."""
        return {
            "role": params["role"],
            "content": await self._content(tenant_id, params["content"], f"{prefix}content"),
            "attachments": await self._attachments(tenant_id, params.get("attachments"), f"{prefix}attachments"),
            "metadata": check_metadata(params.get("metadata"), f"{prefix}metadata") or {},
        }

    async def _content(self, tenant_id: str, content, param: str) -> list[dict]:
        if isinstance(content, str):
            if not content:
                raise invalid_request(f"Invalid '{param}': empty string. Expected a string with minimum length 1, but got an empty string instead.",
                                      param=param, code="empty_string")
            return [text_part(content)]
        parts = list(content)
        if not parts:
            raise invalid_request(f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                                  param=param, code="empty_array")
        out = []
        for index, part in enumerate(parts):
            where = f"{param}[{index}]"
            if part["type"] == "text":
                out.append(text_part(part["text"]))
            elif part["type"] == "image_file":
                image = part["image_file"]
                await check_file(self._files, tenant_id, image["file_id"], f"{where}.image_file.file_id")
                out.append({"type": "image_file", "image_file": {"file_id": image["file_id"], "detail": image.get("detail") or "auto"}})
            else:
                image = part["image_url"]
                if not image["url"].startswith(("https://", "http://", "data:image/")):
                    raise invalid_request(f"Invalid '{where}.image_url.url': expected a URL with an http(s) or data:image scheme.",
                                          param=f"{where}.image_url.url", code="invalid_value")
                out.append({"type": "image_url", "image_url": {"url": image["url"], "detail": image.get("detail") or "auto"}})
        return out

    async def _attachments(self, tenant_id: str, attachments, param: str) -> list[dict]:
        out = []
        for index, attachment in enumerate(attachments or ()):
            where = f"{param}[{index}]"
            if "file_id" not in attachment:
                raise invalid_request(f"Missing required parameter: '{where}.file_id'.", param=f"{where}.file_id", code="missing_required_parameter")
            await check_file(self._files, tenant_id, attachment["file_id"], f"{where}.file_id")
            tools = [{"type": tool["type"]} for tool in attachment.get("tools") or ()]
            out.append({"file_id": attachment["file_id"], "tools": list({t["type"]: t for t in tools}.values())})
        return out

    async def searchable(self, tenant_id: str, thread: dict, drafts: list[dict]) -> tuple[str | None, bool]:
        """(the vector store the drafts' file_search attachments go to, whether it was created now)."""
        if not file_search_files(drafts):
            return None, False
        existing = search_store(thread)
        if existing is not None:
            return existing, False
        return await self._resources.new_store(tenant_id), True

    async def add_files(self, tenant_id: str, store_id: str | None, drafts: list[dict]) -> None:
        if store_id is not None:
            for file_id in file_search_files(drafts):
                await self._resources.add_file(tenant_id, store_id, file_id)

    @staticmethod
    async def write(conn, tenant_id: str, thread_id: str, drafts: list[dict]) -> list[dict]:
        made = []
        for draft in drafts:
            message = message_object(thread_id, **draft)
            await conn.execute(insert(messages).values(
                id=message["id"], thread_id=thread_id, tenant_id=tenant_id, run_id=None, created_at=message["created_at"], data=message,
            ))
            made.append(message)
        return made

    async def create(self, tenant_id: str, thread_id: str, params: dict) -> dict:
        """A client's message: refused while a run is active on the thread."""
        await self.thread(tenant_id, thread_id)
        active = await self._db.fetch_one(_ACTIVE_RUN, {"thread_id": thread_id})
        if active is not None:
            raise invalid_request(f"Can't add messages to {thread_id} while a run {active.id} is active.")
        return await self.create_unchecked(tenant_id, thread_id, params)

    async def create_unchecked(self, tenant_id: str, thread_id: str, params: dict) -> dict:
        """A message as a client would create it, without the active-run check (a run's `additional_messages`)."""
        thread = await self.thread(tenant_id, thread_id)
        draft = await self.draft(tenant_id, params)
        store_id, created = await self.searchable(tenant_id, thread, [draft])
        async with self._db.begin() as conn:
            if created:
                resources = {**(thread.get("tool_resources") or {}), "file_search": {"vector_store_ids": [store_id]}}
                await conn.execute(update(threads).where(threads.c.id == thread_id).values(data={**thread, "tool_resources": resources}))
            [message] = await self.write(conn, tenant_id, thread_id, [draft])
        await self.add_files(tenant_id, store_id, [draft])
        return message

    async def insert(self, tenant_id: str, thread_id: str, *, role: str, content: list[dict], run_id: str | None = None,
                     assistant_id: str | None = None, attachments: list[dict] | None = None, metadata: dict | None = None,
                     status: str = "completed") -> dict:
        """A full message object stored as given (no checks): for the runs engine."""
        message = message_object(thread_id, role=role, content=content, run_id=run_id, assistant_id=assistant_id,
                                 attachments=attachments, metadata=metadata, status=status)
        async with self._db.begin() as conn:
            await conn.execute(insert(messages).values(
                id=message["id"], thread_id=thread_id, tenant_id=tenant_id, run_id=run_id, created_at=message["created_at"], data=message,
            ))
        return message

    # ---- reading and changing ----

    async def get(self, tenant_id: str, thread_id: str, message_id: str) -> dict:
        await self.thread(tenant_id, thread_id)
        row = await self._db.fetch_one(_GET, {"id": message_id, "tenant_id": tenant_id})
        if row is None or row.data["thread_id"] != thread_id:
            raise no_object("message", message_id, "message_id")
        return row.data

    async def list(self, tenant_id: str, thread_id: str, page: Page, run_id: str | None = None) -> dict:
        await self.thread(tenant_id, thread_id)
        filters = {"tenant_id": tenant_id, "thread_id": thread_id}
        if run_id:
            filters["run_id"] = run_id
        rows, has_more = await fetch_page(self._db, messages, page, filters, columns=(messages.c.id, messages.c.data))
        return list_body([row.data for row in rows], has_more)

    async def update(self, tenant_id: str, thread_id: str, message_id: str, params: dict) -> dict:
        message = dict(await self.get(tenant_id, thread_id, message_id))
        if "metadata" in params:
            message["metadata"] = check_metadata(params["metadata"]) or {}
            async with self._db.begin() as conn:
                await conn.execute(update(messages).where(messages.c.id == message_id).values(data=message))
        return message

    async def delete(self, tenant_id: str, thread_id: str, message_id: str) -> dict:
        await self.get(tenant_id, thread_id, message_id)
        async with self._db.begin() as conn:
            await conn.execute(delete(messages).where(messages.c.id == message_id))
        return {"id": message_id, "object": "thread.message.deleted", "deleted": True}
