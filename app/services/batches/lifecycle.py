"""What the two batch APIs (OpenAI's and Anthropic's) do alike: start a batch (its row and its
`execute_batch` job), find a tenant's own batch, cancel one.

The batch row's status is its truth (validating → in_progress → finalizing → completed, or failed /
cancelling → cancelled); a cancel is a compare-and-set, so it never overwrites a move the job made.
"""
from __future__ import annotations

import time

from app.core.errors import APIError, not_found
from app.core.ids import check_prefix, new_id
from app.services.batches.messages import ENDED
from app.services.batches.store import OPENAI_PREFIX, BatchStore

TERMINAL = ENDED  # the statuses a batch ends in, whichever API made it


def new_batch(prefix: str, endpoint: str, metadata: dict | None, window_seconds: int) -> dict:
    now = int(time.time())
    return {
        "id": new_id(prefix), "object": "batch", "endpoint": endpoint, "model": None, "errors": None, "input_file_id": None,
        "completion_window": "24h", "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": now,
        "in_progress_at": None, "expires_at": now + window_seconds, "finalizing_at": None, "completed_at": None, "failed_at": None,
        "expired_at": None, "cancelling_at": None, "cancelled_at": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": metadata, "usage": None,
    }


async def start(store: BatchStore, queue, tenant_id: str, batch: dict) -> None:
    await store.insert(tenant_id, batch)
    await queue.enqueue("execute_batch", key=batch["id"], batch_id=batch["id"])


async def own(store: BatchStore, tenant_id: str, batch_id: str, prefix: str) -> dict:
    """The tenant's batch of this API (its id prefix), or OpenAI's / Anthropic's 404."""
    if prefix == OPENAI_PREFIX:
        check_prefix(batch_id, prefix, "batch_id")
    batch = await store.get_own(tenant_id, batch_id) if batch_id.startswith(prefix) else None
    if batch is None:
        raise not_found("Batch" if prefix == OPENAI_PREFIX else "MessageBatch", batch_id, param="batch_id")
    return batch


async def cancel(store: BatchStore, tenant_id: str, batch_id: str, prefix: str) -> dict:
    """The batch moved to `cancelling` (the job notices at its next write), or as it is if it already was;
    409 if it has ended or is ending."""
    for _ in range(20):
        batch = await own(store, tenant_id, batch_id, prefix)
        if batch["status"] in ("cancelling", "cancelled"):
            return batch
        if batch["status"] not in ("validating", "in_progress"):
            raise APIError(f"Cannot cancel a batch with status '{batch['status']}'.", status_code=409, code="batch_not_cancellable")
        expected = batch["status"]
        batch = {**batch, "status": "cancelling", "cancelling_at": int(time.time())}
        if await store.save(batch, expected):
            return batch
    raise APIError("The batch is changing status; try again.", status_code=409)
