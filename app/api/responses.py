"""/v1/responses. (Skeleton: filled in by the Responses work.)"""
from __future__ import annotations

RESPONSES_HANDLERS: list = []
