"""Tables for evals (`/v1/evals`): an eval, its runs, and each run's output items. Imported by storage.models.

An output item is unique per (run, datasource_item_id): a resumed run cannot grade a data-source row twice.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from storage.models import json_field, seq_field


class Eval(SQLModel, table=True):
    __tablename__ = "evals"
    __table_args__ = (Index("ix_evals_tenant_seq", "tenant_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    data: dict = json_field(nullable=False)


class EvalRun(SQLModel, table=True):
    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_runs_tenant_eval_seq", "tenant_id", "eval_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    eval_id: str = Field(max_length=64)
    created_at: int
    status: str = Field(max_length=24)
    data: dict = json_field(nullable=False)


class EvalOutputItem(SQLModel, table=True):
    __tablename__ = "eval_output_items"
    __table_args__ = (
        Index("ix_eval_output_items_tenant_run_seq", "tenant_id", "run_id", "seq"),
        Index("ux_eval_output_items_run_item", "run_id", "datasource_item_id", unique=True),
    )
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    run_id: str = Field(max_length=64)
    datasource_item_id: int
    status: str = Field(max_length=16)
    data: dict = json_field(nullable=False)
