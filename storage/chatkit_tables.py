"""Tables for checkpoint permissions, custom voices and voice consents, and ChatKit sessions and threads.
Imported by storage.models (migration 0013)."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from storage.models import seq_field


class CheckpointPermission(SQLModel, table=True):
    """A project allowed to use a fine-tuned model checkpoint; `tenant_id` is the checkpoint's owner."""

    __tablename__ = "checkpoint_permissions"
    __table_args__ = (Index("ix_checkpoint_permissions_tenant_ckpt_seq", "tenant_id", "checkpoint", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    checkpoint: str = Field(max_length=256)
    project_id: str = Field(max_length=128)
    created_at: int


class VoiceConsent(SQLModel, table=True):
    """A consent recording (`cons_…`); the audio is in the blob store at `blob_key`."""

    __tablename__ = "voice_consents"
    __table_args__ = (Index("ix_voice_consents_tenant_seq", "tenant_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    name: str = Field(max_length=256)
    language: str = Field(max_length=64)
    bytes: int
    blob_key: str = Field(max_length=512)


class CustomVoice(SQLModel, table=True):
    """A custom voice (`voice_…`) made from an audio sample; `pitch` is the timbre the offline TTS gives it."""

    __tablename__ = "custom_voices"
    __table_args__ = (Index("ix_custom_voices_tenant_seq", "tenant_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    name: str = Field(max_length=256)
    consent_id: str = Field(max_length=64)
    pitch: int
    bytes: int
    blob_key: str = Field(max_length=512)
