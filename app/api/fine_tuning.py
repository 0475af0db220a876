"""/v1/fine_tuning. (Skeleton: filled in by the fine-tuning work.)"""
from __future__ import annotations

FINE_TUNING_HANDLERS: list = []
