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


app = Litestar([retrieve, list_files, create], openapi_config=None, logging_config=None)
