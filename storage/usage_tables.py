"""Tables for usage records and per-project rate limits (team mode, issue 8). Imported by storage.models.

Usage is kept in one-minute buckets per (kind, project, model, API key, batch or not): API processes add their
in-memory sums to a bucket's row with an upsert, so a row is written about once a second per active
combination rather than once per request.
"""
from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from storage.models import seq_field


def _count_field() -> Any:
    return Field(default=0, sa_column=Column(BigInteger, nullable=False))


class UsageBucket(SQLModel, table=True):
    __tablename__ = "usage_buckets"
    __table_args__ = (Index("ux_usage_buckets_key", "start_time", "kind", "project_id", "model", "api_key_id", "batch", unique=True),)
    seq: Optional[int] = seq_field()
    start_time: int  # the bucket's minute, unix seconds
    kind: str = Field(max_length=16)  # "completions" (chat, legacy completions, responses, messages) or "embeddings"
    project_id: str = Field(max_length=64)
    model: str = Field(max_length=256)
    api_key_id: str = Field(default="", max_length=64)  # "" when the caller's key has no id (open mode)
    batch: bool = False
    input_tokens: int = _count_field()
    output_tokens: int = _count_field()
    input_cached_tokens: int = _count_field()
    num_model_requests: int = _count_field()


class ProjectRateLimit(SQLModel, table=True):
    """A project's own limits for one model ("*": every model), overriding the settings' defaults."""

    __tablename__ = "project_rate_limits"
    __table_args__ = (Index("ux_project_rate_limits_project_model", "project_id", "model", unique=True),)
    seq: Optional[int] = seq_field()
    project_id: str = Field(max_length=64)
    model: str = Field(max_length=256)
    max_requests_per_1_minute: int = 0
    max_tokens_per_1_minute: int = 0
    updated_at: int
