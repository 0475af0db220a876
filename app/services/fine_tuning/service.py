"""Fine-tuning jobs. (Skeleton: filled in by the fine-tuning work.)"""
from __future__ import annotations


class FineTuningService:
    def __init__(self, db, files, queue, models, settings) -> None:
        self._db, self._files, self._queue, self._models, self._settings = db, files, queue, models, settings

    async def execute(self, job_id: str) -> None:
        raise NotImplementedError
