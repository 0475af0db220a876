"""Assistants: create, list, retrieve, update, delete. (Skeleton: filled in by the CRUD work.)"""
from __future__ import annotations


class AssistantsService:
    def __init__(self, db, models, vector_stores, files) -> None:
        self._db, self._models, self._vector_stores, self._files = db, models, vector_stores, files

    async def get(self, tenant_id: str, assistant_id: str) -> dict:
        raise NotImplementedError
