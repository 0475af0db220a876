"""Messages of a thread. (Skeleton: filled in by the CRUD work.)"""
from __future__ import annotations


class ThreadMessagesService:
    def __init__(self, db, files, vector_stores) -> None:
        self._db, self._files, self._vector_stores = db, files, vector_stores
