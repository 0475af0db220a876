"""Responses. (Skeleton: filled in by the Responses work.)"""
from __future__ import annotations


class ResponsesService:
    def __init__(self, db, bus, queue, inference, conversations, vector_search, files, settings) -> None:
        self._db, self._bus, self._queue, self._inference = db, bus, queue, inference
        self._conversations, self._vector_search, self._files, self._settings = conversations, vector_search, files, settings
