"""Conversations and their items. (Skeleton: filled in by the Conversations work.)"""
from __future__ import annotations


class ConversationsService:
    def __init__(self, db) -> None:
        self._db = db
