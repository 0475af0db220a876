"""Batches. (Skeleton: filled in by the Batches work.)"""
from __future__ import annotations


class BatchesService:
    def __init__(self, db, blobs, files, queue, platform_ref, settings) -> None:
        self._db, self._blobs, self._files, self._queue, self._platform, self._settings = db, blobs, files, queue, platform_ref, settings

    async def execute(self, batch_id: str) -> None:
        raise NotImplementedError
