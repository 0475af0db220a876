"""Threads. (Skeleton: filled in by the CRUD work.)"""
from __future__ import annotations


class ThreadsService:
    def __init__(self, db, messages, vector_stores, files) -> None:
        self._db, self._messages, self._vector_stores, self._files = db, messages, vector_stores, files

    async def get(self, tenant_id: str, thread_id: str) -> dict:
        raise NotImplementedError
