"""Chat completions: routed to a provider, streamed or not, and stored when `store: true`.

Stored completions keep the returned object and the request's messages, for the list / retrieve /
update / delete / messages endpoints. When the client's protocol is the upstream's own (an
OpenAI-compatible upstream) and nothing needs storing, the request is relayed byte for byte.
"""
from __future__ import annotations

import logging
import time
from typing import AsyncIterator

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.core.errors import not_found
from app.core.metadata import check_metadata
from app.core.pagination import Page, fetch_page, list_body
from app.inference.base import RelayResponse
from app.inference.chunks import ChunkAccumulator
from app.services.inference import InferenceService
from app.services.relay_refs import chat_refs
from app.services.relay_scope import RelayScope
from storage.db import Database
from storage.models import StoredChatCompletion
from storage.prepared import Prepared

log = logging.getLogger("understudy.chat")
stored = StoredChatCompletion.__table__
_GET = Prepared(select(stored).where(stored.c.id == bindparam("id"), stored.c.tenant_id == bindparam("tenant_id")))


def _stored_object(row) -> dict:
    return {**row.completion, "metadata": row.metadata or {}}


class ChatService:
    def __init__(self, db: Database, inference: InferenceService, relay_scope: RelayScope) -> None:
        self._db = db
        self._inference = inference
        self._scope = relay_scope

    async def relay(self, tenant_id: str, params: dict, raw_body: bytes) -> RelayResponse | None:
        """Byte-for-byte passthrough when the provider speaks OpenAI's protocol and nothing is stored.
        An earlier audio reply or a file the messages name must be the tenant's (app/services/relay_scope.py)."""
        if params.get("store") or self._inference.provider_for(tenant_id, params["model"]).info.kind != "openai":
            return None
        await self._scope.check(tenant_id, chat_refs(params))
        relayed = await self._inference.relay(tenant_id, params["model"], "/chat/completions", raw_body, stream=bool(params.get("stream")))
        modalities = params.get("modalities")
        if relayed is not None and isinstance(modalities, list) and "audio" in modalities:
            relayed = self._scope.watch(tenant_id, "chat", relayed)  # its audio reply's id, for the next turn
        return relayed

    async def create(self, tenant_id: str, params: dict) -> dict:
        completion = await self._inference.call(tenant_id, "chat", params)
        if params.get("store"):
            await self._store(tenant_id, params, completion)
        return completion

    async def create_stream(self, tenant_id: str, params: dict) -> AsyncIterator[dict]:
        chunks = await self._inference.stream(tenant_id, "chat_stream", params)
        if not params.get("store"):
            return chunks
        return self._storing(tenant_id, params, chunks)

    async def _storing(self, tenant_id: str, params: dict, chunks: AsyncIterator[dict]) -> AsyncIterator[dict]:
        accumulator = ChunkAccumulator()
        async for chunk in chunks:
            accumulator.add(chunk)
            yield chunk
        await self._store(tenant_id, params, accumulator.completion())

    async def _store(self, tenant_id: str, params: dict, completion: dict) -> None:
        values = dict(
            id=completion["id"], tenant_id=tenant_id, created_at=completion.get("created") or int(time.time()),
            model=completion.get("model") or params["model"], metadata=check_metadata(params.get("metadata")),
            completion=completion, messages=list(params["messages"]),
        )
        try:
            async with self._db.begin() as conn:
                await conn.execute(insert(stored).values(**values))
        except IntegrityError:
            # An upstream that repeats completion ids: the answer still reaches the client (a stream
            # is already out); the duplicate is not stored a second time.
            log.warning("not storing chat completion %s: this tenant already has one with that id", values["id"])

    async def _row(self, tenant_id: str, completion_id: str):
        row = await self._db.fetch_one(_GET, {"id": completion_id, "tenant_id": tenant_id})
        if row is None:
            raise not_found("ChatCompletion", completion_id, param="completion_id")
        return row

    async def get(self, tenant_id: str, completion_id: str) -> dict:
        return _stored_object(await self._row(tenant_id, completion_id))

    async def list(self, tenant_id: str, page: Page, model: str | None, metadata: dict[str, str]) -> dict:
        filters = {"tenant_id": tenant_id}
        if model:
            filters["model"] = model
        # Metadata filters are few and rare: applied on the JSON column by the database.
        extra = tuple(stored.c.metadata[key].as_string() == bindparam(f"m_{i}") for i, key in enumerate(sorted(metadata)))
        params = {f"m_{i}": metadata[key] for i, key in enumerate(sorted(metadata))}
        rows, has_more = await fetch_page(self._db, stored, page, filters, extra, params)
        return list_body([_stored_object(row) for row in rows], has_more)

    async def update(self, tenant_id: str, completion_id: str, metadata: dict | None) -> dict:
        metadata = check_metadata(metadata) or {}
        await self._row(tenant_id, completion_id)
        async with self._db.begin() as conn:
            await conn.execute(update(stored).where(stored.c.id == completion_id, stored.c.tenant_id == tenant_id).values(metadata=metadata))
        return await self.get(tenant_id, completion_id)

    async def delete(self, tenant_id: str, completion_id: str) -> dict:
        async with self._db.begin() as conn:
            gone = await conn.execute(delete(stored).where(stored.c.id == completion_id, stored.c.tenant_id == tenant_id))
        if gone.rowcount != 1:
            raise not_found("ChatCompletion", completion_id, param="completion_id")
        return {"object": "chat.completion.deleted", "id": completion_id, "deleted": True}

    async def messages(self, tenant_id: str, completion_id: str, page: Page) -> dict:
        row = await self._row(tenant_id, completion_id)
        items = [_message_object(f"{completion_id}-{index}", message) for index, message in enumerate(row.messages)]
        if page.order == "desc":
            items.reverse()
        if page.after:
            ids = [item["id"] for item in items]
            items = items[ids.index(page.after) + 1:] if page.after in ids else []
        return list_body(items[: page.limit], len(items) > page.limit)


def _message_object(message_id: str, message: dict) -> dict:
    content = message.get("content")
    parts = content if isinstance(content, list) else None
    text = content if isinstance(content, str) else (
        "".join(p.get("text", "") for p in parts if p.get("type") == "text") if parts else None
    )
    body = {"id": message_id, "role": message.get("role"), "content": text, "refusal": None, "content_parts": parts}
    if message.get("name"):
        body["name"] = message["name"]
    if message.get("tool_calls"):
        body["tool_calls"] = message["tool_calls"]
    return body
