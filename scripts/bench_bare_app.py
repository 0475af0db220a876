"""The baseline for scripts/bench_crud.py: a bare Litestar app answering the same routes with
constant bodies of the same shape, served by the same uvicorn. What Understudy adds on top (auth,
database, blob store, headers, errors) is the difference."""
from __future__ import annotations

import time

from litestar import Litestar, Request, get, post

FILE = {
    "id": "file-0123456789abcdefghijklmn", "object": "file", "bytes": 1024, "created_at": int(time.time()),
    "filename": "bench.txt", "purpose": "assistants", "status": "processed",
}
PAGE = {"object": "list", "data": [dict(FILE, id=f"file-{i:024d}") for i in range(20)], "first_id": "a", "last_id": "b", "has_more": True}


@get("/v1/files/{file_id:str}")
async def retrieve(file_id: str) -> dict:
    return dict(FILE, id=file_id)


@get("/v1/files")
async def list_files(limit: int = 20) -> dict:
    return PAGE


@post("/v1/files", status_code=200)
async def create(request: Request) -> dict:
    await request.body()
    return FILE


COMPLETION = {
    "id": "chatcmpl-0123456789abcdefghijklmn", "object": "chat.completion", "created": int(time.time()), "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "You asked about the harbour: boats, tides and gulls.",
                                         "refusal": None, "annotations": []}, "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 11, "total_tokens": 23}, "service_tier": "default",
}


@post("/v1/chat/completions", status_code=200)
async def chat(request: Request) -> dict:
    await request.json()
    return COMPLETION


app = Litestar([retrieve, list_files, create, chat], openapi_config=None, logging_config=None)
