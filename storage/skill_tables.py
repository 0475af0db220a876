"""Tables for skills (`/v1/skills`): a skill and its immutable, numbered versions. Imported by storage.models.

A version's files are one zip in the blob store (`blob_key`), rebuilt by us from what was uploaded; the
rows hold what lists and lookups need. `issued` is the highest version number ever given out, so a deleted
latest version's number is never reused.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from storage.models import big_int_field, seq_field


class Skill(SQLModel, table=True):
    __tablename__ = "skills"
    __table_args__ = (Index("ix_skills_tenant_seq", "tenant_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    name: str = Field(max_length=256)
    description: str
    default_version: int
    latest_version: int
    issued: int


class SkillVersion(SQLModel, table=True):
    __tablename__ = "skill_versions"
    __table_args__ = (
        Index("ix_skill_versions_tenant_skill_seq", "tenant_id", "skill_id", "seq"),
        Index("ux_skill_versions_skill_version", "skill_id", "version", unique=True),
    )
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    skill_id: str = Field(max_length=64)
    version: int
    created_at: int
    name: str = Field(max_length=256)
    description: str
    bytes: int = big_int_field()
    blob_key: str = Field(max_length=512)
