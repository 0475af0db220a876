"""/v1/batches and /v1/messages/batches. (Skeleton: filled in by the Batches work.)"""
from __future__ import annotations

BATCHES_HANDLERS: list = []
ANTHROPIC_BATCHES_HANDLERS: list = []  # mounted beside /v1/messages (Anthropic's auth and errors)
