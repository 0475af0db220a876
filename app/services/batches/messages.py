"""Anthropic Message Batches on the batch engine: the requests checked at create time as Anthropic does,
and the batch and its result lines in Anthropic's shapes (RFC 3339 times, `processing_status`, one
result type per request: succeeded, errored, canceled or expired)."""
from __future__ import annotations

import re
from datetime import datetime, timezone

from app.core.errors import invalid_request
from app.inference.translate.anthropic import openai_error_to_anthropic

MESSAGES = "/v1/messages"
ID_PREFIX = "msgbatch_"
MAX_REQUESTS = 100_000
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ENDED = ("completed", "failed", "cancelled", "expired")
RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")


def parse_requests(body: dict) -> list[dict]:
    """The batch's lines ({"line", "custom_id", "body"}). The shape of the list is checked here (a 400 for
    the whole batch); each request's `params` are checked when it runs, an error being its result."""
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise invalid_request("requests: Field required (a list of at least one request)", param="requests")
    if len(requests) > MAX_REQUESTS:
        raise invalid_request(f"requests: List should have at most {MAX_REQUESTS} items, not {len(requests)}", param="requests")
    unknown = set(body) - {"requests"}
    if unknown:
        raise invalid_request(f"{sorted(unknown)[0]}: Extra inputs are not permitted", param=sorted(unknown)[0])
    seen: set[str] = set()
    lines = []
    for index, request in enumerate(requests):
        where = f"requests.{index}"
        if not isinstance(request, dict):
            raise invalid_request(f"{where}: Input should be an object", param=where)
        for key in request:
            if key not in ("custom_id", "params"):
                raise invalid_request(f"{where}.{key}: Extra inputs are not permitted", param=f"{where}.{key}")
        custom_id = request.get("custom_id")
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            raise invalid_request(f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'", param=f"{where}.custom_id")
        if custom_id in seen:
            raise invalid_request(f"Duplicate custom_id '{custom_id}': each request in a batch needs a unique custom_id.",
                                  param=f"{where}.custom_id")
        seen.add(custom_id)
        if not isinstance(request.get("params"), dict):
            raise invalid_request(f"{where}.params: Field required", param=f"{where}.params")
        lines.append({"line": index + 1, "custom_id": custom_id, "body": request["params"]})
    return lines


def rfc3339(timestamp: int | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def message_batch(batch: dict, base_url: str) -> dict:
    status = batch["status"]
    ended = status in ENDED
    counts = batch["request_counts"]
    if ended:
        request_counts = {"processing": 0, **{kind: counts.get(kind, 0) for kind in RESULT_TYPES}}
    else:  # as Anthropic counts: every request is `processing` until the whole batch ends
        request_counts = {"processing": counts["total"], **{kind: 0 for kind in RESULT_TYPES}}
    ended_at = batch["completed_at"] or batch["cancelled_at"] or batch["expired_at"] or batch["failed_at"]
    return {
        "id": batch["id"],
        "type": "message_batch",
        "processing_status": "ended" if ended else "canceling" if status == "cancelling" else "in_progress",
        "request_counts": request_counts,
        "ended_at": rfc3339(ended_at),
        "created_at": rfc3339(batch["created_at"]),
        "expires_at": rfc3339(batch["expires_at"]),
        "archived_at": None,
        "cancel_initiated_at": rfc3339(batch["cancelling_at"]),
        "results_url": f"{base_url}/v1/messages/batches/{batch['id']}/results" if ended else None,
    }


def answered(custom_id: str, response: dict) -> dict:
    if response["status_code"] == 200:
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": response["body"]}}
    error = openai_error_to_anthropic(response["status_code"], response["body"], response["request_id"])
    return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}


def not_run(custom_id: str, kind: str) -> dict:
    """A request the batch never ran: `canceled` or `expired`."""
    return {"custom_id": custom_id, "result": {"type": kind}}
