"""Tables for videos (`/v1/videos`): the video jobs and the characters made from uploaded clips.
Imported by storage.models.

A video's rendered assets (MP4, thumbnail, spritesheet) are blobs under `<tenant>/videos/<id>/`; the row
holds the object as OpenAI shows it (`data`) plus the columns lists and the job filter on.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from storage.models import json_field, seq_field


class Video(SQLModel, table=True):
    __tablename__ = "videos"
    __table_args__ = (Index("ix_videos_tenant_seq", "tenant_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    status: str = Field(max_length=24)
    data: dict = json_field(nullable=False)


class VideoCharacter(SQLModel, table=True):
    __tablename__ = "video_characters"
    __table_args__ = (Index("ix_video_characters_tenant_seq", "tenant_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    data: dict = json_field(nullable=False)
