"""The SQLModel tables.

A table per resource: the columns we filter and sort on, plus the rest of the object where it is
free-form. `seq` is an auto-increment primary key: list cursors order by it, so objects created in the
same second keep their creation order (OpenAI's `created_at` has one-second resolution). `id` is the
public, prefixed id.
"""
from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, LargeBinary, text
from sqlmodel import Field, SQLModel

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a BIGINT identity.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


def seq_field() -> Any:
    return Field(default=None, sa_column=Column("seq", SeqType, primary_key=True, autoincrement=True))


def big_int_field() -> Any:
    """Byte counts: an Upload may be 8 GB, past a 32-bit INTEGER on PostgreSQL."""
    return Field(sa_column=Column(BigInteger, nullable=False))


def json_field(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=nullable))


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    # sha256 of the API key: keys are never stored in the clear.
    key_hash: str = Field(max_length=64, unique=True)
    created_at: int


class File(SQLModel, table=True):
    __tablename__ = "files"
    # Covers a list page (tenant, order, and every column of the wire object): a page is read from
    # the index alone, which halves its cost on SQLite.
    __table_args__ = (
        Index("ix_files_tenant_seq", "tenant_id", "seq", "id", "bytes", "created_at", "filename", "purpose", "status", "status_details", "expires_at"),
        Index("ix_files_tenant_purpose_seq", "tenant_id", "purpose", "seq"),
    )
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    filename: str
    purpose: str = Field(max_length=32)
    bytes: int = big_int_field()
    status: str = Field(default="processed", max_length=16)
    status_details: Optional[str] = None
    expires_at: Optional[int] = Field(default=None, index=True)
    mime_type: Optional[str] = None
    blob_key: str


class Upload(SQLModel, table=True):
    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_tenant_seq", "tenant_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    expires_at: int = Field(index=True)
    status: str = Field(default="pending", max_length=16)
    filename: str
    purpose: str = Field(max_length=32)
    mime_type: str
    bytes: int = big_int_field()
    file_expires_after: Optional[dict] = json_field()
    file_id: Optional[str] = Field(default=None, max_length=64)


class UploadPart(SQLModel, table=True):
    __tablename__ = "upload_parts"
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    upload_id: str = Field(max_length=64, index=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    bytes: int = big_int_field()
    blob_key: str


class StoredChatCompletion(SQLModel, table=True):
    """A chat completion created with `store: true`: the returned object and the request's messages."""

    __tablename__ = "chat_completions"
    # Ids come from upstreams too: unique per tenant, not across tenants.
    __table_args__ = (
        Index("ix_chat_completions_tenant_seq", "tenant_id", "seq"),
        Index("ux_chat_completions_tenant_id", "tenant_id", "id", unique=True),
    )
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=200)
    tenant_id: str = Field(max_length=64)
    created_at: int
    model: str = Field(max_length=200)
    metadata_: Optional[dict] = Field(default=None, sa_column=Column("metadata", JSON, nullable=True))
    completion: dict = json_field(nullable=False)
    messages: list = json_field(nullable=False)


class VectorStore(SQLModel, table=True):
    __tablename__ = "vector_stores"
    __table_args__ = (Index("ix_vector_stores_tenant_seq", "tenant_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    name: Optional[str] = None
    status: str = Field(default="completed", max_length=16)  # expired | in_progress | completed
    usage_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    last_active_at: Optional[int] = None
    expires_after: Optional[dict] = json_field()
    expires_at: Optional[int] = Field(default=None, index=True)
    metadata_: Optional[dict] = Field(default=None, sa_column=Column("metadata", JSON, nullable=True))
    # The embedding model its chunks were embedded with (queries must use the same one).
    embedding_model: str = Field(max_length=200)


class VectorStoreFile(SQLModel, table=True):
    """A file attached to a vector store; `id` is the File's id, unique within the store."""

    __tablename__ = "vector_store_files"
    __table_args__ = (
        Index("ux_vector_store_files_store_file", "vector_store_id", "id", unique=True),
        Index("ix_vector_store_files_store_seq", "vector_store_id", "seq"),
    )
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64)
    vector_store_id: str = Field(max_length=64)
    tenant_id: str = Field(max_length=64)
    batch_id: Optional[str] = Field(default=None, max_length=64, index=True)
    created_at: int
    status: str = Field(default="in_progress", max_length=16)  # in_progress | completed | cancelled | failed
    last_error: Optional[dict] = json_field()
    usage_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    chunking_strategy: dict = json_field(nullable=False)
    attributes: Optional[dict] = json_field()


class VectorStoreFileBatch(SQLModel, table=True):
    __tablename__ = "vector_store_file_batches"
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    vector_store_id: str = Field(max_length=64, index=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    status: str = Field(default="in_progress", max_length=16)  # in_progress | completed | cancelled | failed


class Chunk(SQLModel, table=True):
    """One chunk of a file in a vector store. `seq` is also its id in the store's faiss index, and
    its vector is kept here so a lost index can be rebuilt without re-embedding."""

    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_store_file", "vector_store_id", "file_id"),)
    seq: Optional[int] = seq_field()
    vector_store_id: str = Field(max_length=64)
    file_id: str = Field(max_length=64)
    position: int  # order within the file
    text: str
    tokens: int
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # float32, little-endian


# ---- Assistants API: the wire object lives whole in `data`; columns repeat what is filtered on ----

# A thread has at most one active run: a partial unique index makes a second one impossible even when
# two requests race (the service turns the violation into OpenAI's 400).
ACTIVE_RUN_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")
_ACTIVE_RUN = "status IN ('queued', 'in_progress', 'requires_action', 'cancelling')"


class Assistant(SQLModel, table=True):
    __tablename__ = "assistants"
    __table_args__ = (Index("ix_assistants_tenant_seq", "tenant_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    data: dict = json_field(nullable=False)


class Thread(SQLModel, table=True):
    __tablename__ = "threads"
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    data: dict = json_field(nullable=False)


class ThreadMessage(SQLModel, table=True):
    __tablename__ = "thread_messages"
    __table_args__ = (Index("ix_thread_messages_thread_seq", "thread_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    thread_id: str = Field(max_length=64)
    tenant_id: str = Field(max_length=64)
    run_id: Optional[str] = Field(default=None, max_length=64)
    created_at: int
    data: dict = json_field(nullable=False)


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_thread_seq", "thread_id", "seq"),
        Index("ux_runs_active_thread", "thread_id", unique=True, sqlite_where=text(_ACTIVE_RUN), postgresql_where=text(_ACTIVE_RUN)),
        Index("ix_runs_status_expires", "status", "expires_at"),
    )
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    thread_id: str = Field(max_length=64)
    tenant_id: str = Field(max_length=64)
    assistant_id: str = Field(max_length=64)
    status: str = Field(max_length=16)
    created_at: int
    expires_at: Optional[int] = None
    data: dict = json_field(nullable=False)


class RunStep(SQLModel, table=True):
    __tablename__ = "run_steps"
    __table_args__ = (Index("ix_run_steps_run_seq", "run_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    run_id: str = Field(max_length=64)
    thread_id: str = Field(max_length=64, index=True)
    tenant_id: str = Field(max_length=64)
    status: str = Field(max_length=16)
    created_at: int
    data: dict = json_field(nullable=False)


# ---- Responses API and Conversations ----

class Response(SQLModel, table=True):
    """A response: the wire object in `data`; `request` keeps what executing it needs (background jobs)."""

    __tablename__ = "responses"
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    status: str = Field(max_length=16)
    previous_response_id: Optional[str] = Field(default=None, max_length=64)
    conversation_id: Optional[str] = Field(default=None, max_length=64)
    data: dict = json_field(nullable=False)
    request: Optional[dict] = json_field()


class ResponseItem(SQLModel, table=True):
    """An input (`kind` "input") or output ("output") item of a response, in order."""

    __tablename__ = "response_items"
    __table_args__ = (Index("ix_response_items_response_seq", "response_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64)
    response_id: str = Field(max_length=64)
    tenant_id: str = Field(max_length=64)
    kind: str = Field(max_length=8)
    data: dict = json_field(nullable=False)


class RelayedId(SQLModel, table=True):
    """An id an upstream minted in a relayed answer (an item, a code container, a chat audio reply),
    bound to the tenant whose answer carried it: the upstream sees one key, ours, for every tenant, so
    only that tenant may name it in a relayed request (app/services/relay_scope.py). Relayed response
    ids are `responses` rows with status `relayed`."""

    __tablename__ = "relayed_ids"
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=128, unique=True)
    tenant_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    created_at: int


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    data: dict = json_field(nullable=False)


class ConversationItem(SQLModel, table=True):
    __tablename__ = "conversation_items"
    __table_args__ = (
        Index("ix_conversation_items_conversation_seq", "conversation_id", "seq"),
        Index("ux_conversation_items_conversation_id", "conversation_id", "id", unique=True),
    )
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64)
    conversation_id: str = Field(max_length=64)
    tenant_id: str = Field(max_length=64)
    created_at: int
    data: dict = json_field(nullable=False)


# ---- Batches and fine-tuning ----

class Batch(SQLModel, table=True):
    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_tenant_seq", "tenant_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    status: str = Field(max_length=16)
    data: dict = json_field(nullable=False)


class BatchResult(SQLModel, table=True):
    """One finished line of a batch: written once per custom_id (the unique index makes a resumed
    batch unable to duplicate a line)."""

    __tablename__ = "batch_results"
    __table_args__ = (Index("ux_batch_results_batch_custom_id", "batch_id", "custom_id", unique=True),)
    seq: Optional[int] = seq_field()
    batch_id: str = Field(max_length=64)
    custom_id: str = Field(max_length=512)
    line: int  # position in the input file, from 1
    ok: bool
    data: dict = json_field(nullable=False)


class FineTuningJob(SQLModel, table=True):
    __tablename__ = "fine_tuning_jobs"
    __table_args__ = (Index("ix_fine_tuning_jobs_tenant_seq", "tenant_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    created_at: int
    status: str = Field(max_length=24)
    data: dict = json_field(nullable=False)


class FineTuningEvent(SQLModel, table=True):
    __tablename__ = "fine_tuning_events"
    __table_args__ = (Index("ix_fine_tuning_events_job_seq", "job_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    job_id: str = Field(max_length=64)
    tenant_id: str = Field(max_length=64)
    created_at: int
    data: dict = json_field(nullable=False)


class FineTuningCheckpoint(SQLModel, table=True):
    __tablename__ = "fine_tuning_checkpoints"
    __table_args__ = (Index("ix_fine_tuning_checkpoints_job_seq", "job_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    job_id: str = Field(max_length=64)
    tenant_id: str = Field(max_length=64)
    created_at: int
    data: dict = json_field(nullable=False)


class FineTunedModel(SQLModel, table=True):
    """A model a fine-tuning job produced, visible to its tenant only."""

    __tablename__ = "fine_tuned_models"
    __table_args__ = (Index("ux_fine_tuned_models_tenant_id", "tenant_id", "id", unique=True),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=256)
    tenant_id: str = Field(max_length=64)
    created_at: int
    data: dict = json_field(nullable=False)


class Job(SQLModel, table=True):
    """A unit of background work. Its arguments are ids only; the truth lives in the objects' rows."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_seq", "status", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=64)
    args: dict = json_field(nullable=False)
    # A job enqueued twice with the same key runs once (e.g. one ingestion per file).
    key: Optional[str] = Field(default=None, max_length=200, unique=True)
    status: str = Field(default="queued", max_length=16)  # queued | running | succeeded | failed
    attempts: int = 0
    last_error: Optional[str] = None
    created_at: int
    updated_at: int


metadata = SQLModel.metadata


def is_keyword_index(name: str | None) -> bool:
    """The keyword index over chunks lives outside this metadata (an FTS5 table on SQLite, a GIN
    expression index on PostgreSQL; migration 0003): schema comparisons leave it alone."""
    return bool(name) and (name.startswith("chunks_fts") or name == "ix_chunks_text_fts")


class Project(SQLModel, table=True):
    """A project (team mode): in keys mode its id is the tenant id of every request made with its keys."""

    __tablename__ = "projects"
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=256, index=True)
    created_at: int
    archived_at: Optional[int] = None
    external_key_id: Optional[str] = Field(default=None, max_length=256)


class ApiKey(SQLModel, table=True):
    """An issued key: `project` keys (bound to a project) and `admin` keys. Only the sha256 is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_kind_project_seq", "kind", "project_id", "seq"),)
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    kind: str = Field(max_length=16)  # project | admin
    project_id: Optional[str] = Field(default=None, max_length=64)
    name: Optional[str] = Field(default=None, max_length=256)
    key_hash: str = Field(max_length=64, unique=True)
    redacted_value: str = Field(max_length=64)
    created_at: int
    expires_at: Optional[int] = None
    last_used_at: Optional[int] = None


from storage.usage_tables import *  # noqa: E402,F401,F403  (usage and rate-limit tables, in their own module)


class Trace(SQLModel, table=True):
    """A trace the Agents SDK's exporter sent to `POST /v1/traces/ingest` (its `export()` as `data`):
    trace ids are the client's, unique per tenant only."""

    __tablename__ = "traces"
    __table_args__ = (Index("ix_traces_tenant_id", "tenant_id", "id", unique=True), Index("ix_traces_tenant_seq", "tenant_id", "seq"))
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=128)
    tenant_id: str = Field(max_length=64)
    created_at: int
    data: dict = json_field(nullable=False)


class TraceSpan(SQLModel, table=True):
    """A finished span of a trace, as exported (`data`); a span may arrive before or without its trace."""

    __tablename__ = "trace_spans"
    __table_args__ = (
        Index("ix_trace_spans_tenant_id", "tenant_id", "id", unique=True),
        Index("ix_trace_spans_tenant_trace_seq", "tenant_id", "trace_id", "seq"),
        Index("ix_trace_spans_tenant_seq", "tenant_id", "seq"),
    )
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=128)
    tenant_id: str = Field(max_length=64)
    trace_id: str = Field(max_length=128)
    created_at: int
    data: dict = json_field(nullable=False)


# ---- Containers (the code interpreter's persistent work dirs) ----

class Container(SQLModel, table=True):
    """A container (`cntr_`): `status` running until `expires_at` (last_active_at + its minutes), then
    expired; its files are `container_files` rows whose bytes are in the blob store."""

    __tablename__ = "containers"
    __table_args__ = (Index("ix_containers_tenant_seq", "tenant_id", "seq"), Index("ix_containers_status_expires", "status", "expires_at"))
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    name: str = Field(default="")
    created_at: int
    status: str = Field(max_length=16)
    expires_at: int  # when it expires unless used again (seconds; a test setting may shorten a minute)
    data: dict = json_field(nullable=False)


class ContainerFile(SQLModel, table=True):
    """A file of a container (`cfile_`): its path under /mnt/data, its bytes in the blob store."""

    __tablename__ = "container_files"
    __table_args__ = (
        Index("ix_container_files_container_seq", "container_id", "seq"),
        Index("ux_container_files_container_path", "container_id", "path", unique=True),
    )
    seq: Optional[int] = seq_field()
    id: str = Field(max_length=64, unique=True)
    container_id: str = Field(max_length=64)
    tenant_id: str = Field(max_length=64)
    created_at: int
    path: str = Field(max_length=1024)
    source: str = Field(max_length=16)
    bytes: int = big_int_field()
    blob_key: str


from storage.skill_tables import *  # noqa: E402,F401,F403  (skills and their versions, in their own module)
from storage.video_tables import *  # noqa: E402,F401,F403  (videos and characters, in their own module)
from storage.eval_tables import *  # noqa: E402,F401,F403  (evals, their runs and output items, in their own module)
from storage.chatkit_tables import *  # noqa: E402,F401,F403  (checkpoint permissions, voices, ChatKit; migration 0015)
