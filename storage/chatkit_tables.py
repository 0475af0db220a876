"""Tables for checkpoint permissions, custom voices and voice consents, and ChatKit sessions and threads.
Imported by storage.models (migration 0015)."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from storage.models import json_field, seq_field


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


class ChatKitSession(SQLModel, table=True):
    """A ChatKit session (`cksess_…`): its client secret, expiry and status; the rest of the object in `data`."""

    __tablename__ = "chatkit_sessions"
    __table_args__ = (Index("ix_chatkit_sessions_tenant_seq", "tenant_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    expires_at: int
    status: str = Field(max_length=16)
    user: str = Field(max_length=512)
    data: dict = json_field(nullable=False)


class ChatKitThread(SQLModel, table=True):
    """A ChatKit thread (`cthr_…`) of a user; its title and status in `data`."""

    __tablename__ = "chatkit_threads"
    __table_args__ = (Index("ix_chatkit_threads_tenant_seq", "tenant_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    user: str = Field(max_length=512)
    created_at: int
    data: dict = json_field(nullable=False)


class ChatKitThreadItem(SQLModel, table=True):
    """An item (`cthi_…`) of a ChatKit thread, as the API shows it, in `data`."""

    __tablename__ = "chatkit_thread_items"
    __table_args__ = (Index("ix_chatkit_thread_items_thread_seq", "tenant_id", "thread_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    thread_id: str = Field(max_length=64)
    created_at: int
    data: dict = json_field(nullable=False)
