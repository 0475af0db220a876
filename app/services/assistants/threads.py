"""Threads: create (with initial messages and tool resources), retrieve, update, delete.

A thread and its initial messages are written in one transaction after every message and resource has
been checked. Deleting a thread removes its messages, runs and run steps; vector stores it made stay
(they expire on their own, as OpenAI's do).
"""
from __future__ import annotations

import time

from sqlalchemy import delete, insert, update

from app.core.ids import new_id
from app.core.metadata import check_metadata
from app.services.assistants.thread_messages import ThreadMessagesService, messages, threads
from app.services.assistants.tool_resources import THREAD_STORE_EXPIRY, ToolResources, merge
from storage.db import Database
from storage.models import Run, RunStep

runs = Run.__table__
run_steps = RunStep.__table__


class ThreadsService:
    def __init__(self, db: Database, messages: ThreadMessagesService, vector_stores, files) -> None:
        self._db, self._messages, self._vector_stores, self._files = db, messages, vector_stores, files
        self._resources = ToolResources(files, vector_stores)

    async def get(self, tenant_id: str, thread_id: str) -> dict:
        return await self._messages.thread(tenant_id, thread_id)

    async def create(self, tenant_id: str, params: dict) -> dict:
        metadata = check_metadata(params.get("metadata")) or {}
        await self._resources.check(tenant_id, params.get("tool_resources"))
        drafts = [await self._messages.draft(tenant_id, message, f"messages[{index}].") for index, message in enumerate(params.get("messages") or ())]
        now = int(time.time())
        thread = {
            "id": new_id("thread_"), "object": "thread", "created_at": now, "metadata": metadata,
            "tool_resources": await self._resources.resolve(tenant_id, params.get("tool_resources"), store_expiry=THREAD_STORE_EXPIRY) or {},
        }
        store_id, created = await self._messages.searchable(tenant_id, thread, drafts)
        if created:
            thread["tool_resources"]["file_search"] = {"vector_store_ids": [store_id]}
        async with self._db.begin() as conn:
            await conn.execute(insert(threads).values(id=thread["id"], tenant_id=tenant_id, created_at=now, data=thread))
            await self._messages.write(conn, tenant_id, thread["id"], drafts)
        await self._messages.add_files(tenant_id, store_id, drafts)
        return thread

    async def update(self, tenant_id: str, thread_id: str, params: dict) -> dict:
        thread = dict(await self.get(tenant_id, thread_id))
        if "metadata" in params:
            thread["metadata"] = check_metadata(params["metadata"]) or {}
        if "tool_resources" in params:
            await self._resources.check(tenant_id, params["tool_resources"])
            resolved = await self._resources.resolve(tenant_id, params["tool_resources"])
            thread["tool_resources"] = merge(thread.get("tool_resources"), resolved) if resolved is not None else {}
        async with self._db.begin() as conn:
            await conn.execute(update(threads).where(threads.c.id == thread_id, threads.c.tenant_id == tenant_id).values(data=thread))
        return thread

    async def delete(self, tenant_id: str, thread_id: str) -> dict:
        await self.get(tenant_id, thread_id)
        async with self._db.begin() as conn:
            await conn.execute(delete(run_steps).where(run_steps.c.thread_id == thread_id))
            await conn.execute(delete(runs).where(runs.c.thread_id == thread_id))
            await conn.execute(delete(messages).where(messages.c.thread_id == thread_id))
            await conn.execute(delete(threads).where(threads.c.id == thread_id))
        return {"id": thread_id, "object": "thread.deleted", "deleted": True}
