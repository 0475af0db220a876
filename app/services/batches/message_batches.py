"""Anthropic's Message Batches (/v1/messages/batches): the batch engine of OpenAI's batches, in
Anthropic's shapes (messages.py). The requests arrive in the body, not as a file, so they are kept as
a blob the job reads; results are read here, once the batch has ended, and a batch that has ended can
be deleted.
"""
from __future__ import annotations

import msgspec

from app.core.errors import APIError, invalid_request
from app.core.pagination import Page
from app.services.batches import lifecycle, messages as anthropic
from app.services.batches.store import BatchStore

_PREFIX = anthropic.ID_PREFIX


class MessageBatchesService:
    def __init__(self, store: BatchStore, blobs, queue, *, window_seconds: int) -> None:
        self._store, self._blobs, self._queue = store, blobs, queue
        self._window = window_seconds

    async def create(self, tenant_id: str, body: dict, base_url: str) -> dict:
        lines = anthropic.parse_requests(body)
        batch = lifecycle.new_batch(_PREFIX, anthropic.MESSAGES, None, self._window)
        batch["input_blob"] = f"batches/{batch['id']}/requests.jsonl"
        batch["request_counts"]["total"] = len(lines)
        await self._blobs.put(batch["input_blob"], b"".join(msgspec.json.encode(line) + b"\n" for line in lines))
        await lifecycle.start(self._store, self._queue, tenant_id, batch)
        return anthropic.message_batch(batch, base_url)

    async def get(self, tenant_id: str, batch_id: str, base_url: str) -> dict:
        return anthropic.message_batch(await lifecycle.own(self._store, tenant_id, batch_id, _PREFIX), base_url)

    async def list(self, tenant_id: str, page: Page, base_url: str) -> dict:
        found, has_more = await self._store.page(tenant_id, page, _PREFIX)
        data = [anthropic.message_batch(batch, base_url) for batch in found]
        return {"data": data, "has_more": has_more, "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}

    async def cancel(self, tenant_id: str, batch_id: str, base_url: str) -> dict:
        try:
            batch = await lifecycle.cancel(self._store, tenant_id, batch_id, _PREFIX)
        except APIError as error:  # a batch that has ended (or is ending) is returned as it is
            if error.status_code != 409:
                raise
            batch = await lifecycle.own(self._store, tenant_id, batch_id, _PREFIX)
        return anthropic.message_batch(batch, base_url)

    async def delete(self, tenant_id: str, batch_id: str) -> dict:
        batch = await lifecycle.own(self._store, tenant_id, batch_id, _PREFIX)
        if batch["status"] not in anthropic.ENDED:
            raise invalid_request(f"Message Batch {batch_id} is still processing: cancel it, or wait for it to end, before deleting it.")
        await self._store.delete(batch_id)
        await self._blobs.delete(batch["input_blob"])
        return {"id": batch_id, "type": "message_batch_deleted"}

    async def results(self, tenant_id: str, batch_id: str) -> bytes:
        batch = await lifecycle.own(self._store, tenant_id, batch_id, _PREFIX)
        if batch["status"] not in anthropic.ENDED:
            raise APIError(f"Message Batch {batch_id} has not ended yet: its results are available once processing_status is 'ended'.",
                           status_code=404)
        rows = await self._store.results(batch_id)
        return b"".join(msgspec.json.encode(row.data) + b"\n" for row in rows)
