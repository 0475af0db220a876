"""/v1/conversations. (Skeleton: filled in by the Conversations work.)"""
from __future__ import annotations

CONVERSATIONS_HANDLERS: list = []
