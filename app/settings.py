"""One settings object, read from UNDERSTUDY_* environment variables (and an optional TOML file).

Nothing is required: the defaults are the embedded setup (SQLite and blobs under ./data, the
in-process job runner, the in-memory event bus, open auth).
"""
from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


IMAGE_STREAM_FORMATS = ("openai", "progress")
REPLAY_MISS_MODES = ("error", "passthrough")


def _env_bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    # Empty means SQLite at <data_dir>/understudy.db.
    database_url: str = ""
    # Empty means the in-process job runner and the in-memory event bus.
    redis_url: str = ""
    # S3 / MinIO blob store; empty endpoint means blobs on the local file system.
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "understudy"
    s3_secure: bool = False
    s3_region: str = ""
    # "open": any sk- key is its own tenant. "keys": only issued keys (team mode).
    auth: str = "open"
    # Guards the admin API (/v1/organization/*); empty: the admin API is closed.
    admin_key: str = ""
    # OpenAI's limits: 512 MB for one file, 8 GB for an Upload, 64 MB for one of its parts.
    max_file_bytes: int = 512 * 1024 * 1024
    max_upload_bytes: int = 8 * 1024 * 1024 * 1024
    max_part_bytes: int = 64 * 1024 * 1024
    upload_ttl_seconds: int = 3600
    # Jobs at once in the in-process runner, or in each arq worker: runs spend most of their time waiting
    # on a model.
    job_concurrency: int = 32
    # code_interpreter sandboxes at once in one process: each may hold 512 MB of memory and 512 MB of tmpfs.
    sandbox_concurrency: int = 4
    # The largest skill (/v1/skills): its files' total, uncompressed (a zip upload may not inflate past it).
    max_skill_bytes: int = 50 * 1024 * 1024
    # Keys the provenance marker of the images drawn here (/v1/content_provenance_checks); empty: a key
    # made at first start in <data_dir>/provenance.key.
    provenance_secret: str = ""
    # Containers (/v1/containers): the bytes one container's files may take together (they are written
    # into each sandbox run's work dir, whose tmpfs holds 512 MB), and the length of the "minute" of their
    # `expires_after.minutes` (60 s; tests shrink it to see a container expire).
    container_max_bytes: int = 256 * 1024 * 1024
    container_minute_seconds: float = 60.0
    # Team mode (arq): attempts per job, the longest one attempt may run, and how soon a job held by a
    # worker that died is taken up by another.
    job_max_tries: int = 5
    job_timeout_seconds: int = 2 * 24 * 3600
    job_lease_seconds: float = 10.0
    # Scripted rules for every tenant: a YAML or JSON file (README "Scripted answers and faults").
    script: str = ""
    # How long a run waits in `requires_action` for tool outputs before it expires (OpenAI: 10 minutes).
    run_expiry_seconds: int = 600
    sweep_interval_seconds: float = 60.0
    log_level: str = "info"
    # Upstream providers and model routes (format: app/inference/router.py). TOML `[[providers]]` and
    # `[[routes]]` tables, or JSON lists in UNDERSTUDY_PROVIDERS / UNDERSTUDY_ROUTES.
    providers: list[dict] = field(default_factory=list)
    routes: list[dict] = field(default_factory=list)
    # Shortcuts for one upstream of each kind. OpenAI-compatible: models matching UNDERSTUDY_OPENAI_MODELS
    # (comma-separated globs; "*" when empty) go there; Anthropic takes claude-*, Gemini gemini-*.
    openai_base_url: str = ""
    openai_api_key: str = ""
    openai_models: tuple[str, ...] = ()
    # Whether that upstream speaks the Responses API ("1"/"0"; empty: yes for OpenAI's own URL only).
    openai_responses: str = ""
    anthropic_api_key: str = ""
    anthropic_base_url: str = ""
    gemini_api_key: str = ""
    gemini_base_url: str = ""
    # Defaults for every upstream: read timeout (seconds) and retries after the first attempt.
    upstream_timeout: float = 600.0
    upstream_max_retries: int = 2
    # Model ids added to the catalogue (comma-separated), e.g. ones newer than app/services/model_catalogue.json.
    extra_models: tuple[str, ...] = ()
    # Record every upstream exchange into this directory, and/or answer upstream requests from the cassettes
    # in that one with no network; a request not recorded is a 400 `cassette_miss` ("error") or goes
    # upstream ("passthrough"). README "Record and replay"; app/inference/cassettes.py.
    record: str = ""
    replay: str = ""
    replay_miss: str = "error"
    # Only the catalogue's (and extra) ids are answered, with OpenAI's 404 for any other; by default an id
    # that looks like a known family (`claude-*`, `gpt-*`, ...) is answered by the offline model too.
    strict_models: bool = False
    # The model that embeds vector-store chunks (and queries) unless a store names its own.
    embedding_model: str = "text-embedding-3-small"
    # Pause between the offline model's stream chunks (0: as fast as possible); a non-streamed answer
    # takes as long as its stream would.
    offline_chunk_delay_ms: int = 0
    # Batches: requests of one batch in flight at once, and the completion window ("24h"; shorter in tests).
    batch_concurrency: int = 16
    batch_window_seconds: int = 24 * 3600
    # Evals: data-source rows of one run (larger runs are refused at create) and rows graded at once.
    eval_max_items: int = 10_000
    eval_concurrency: int = 8
    # Emulated fine-tuning: seconds per training step.
    fine_tune_step_seconds: float = 0.05
    # Videos (offline model): seconds per 10% of a video's progress before it renders; the largest
    # reference image (input_reference) and uploaded clip (edits, extensions, characters) accepted.
    video_step_seconds: float = 0.2
    # Videos routed to an upstream: seconds between polls of the upstream's video job.
    video_poll_seconds: float = 2.0
    max_video_reference_bytes: int = 20 * 1024 * 1024
    max_video_clip_bytes: int = 64 * 1024 * 1024
    # Per-project rate limits (requests and estimated tokens per minute; 0: unlimited), unless a project has
    # its own (/v1/organization/projects/{id}/rate_limits). Shared through Redis when redis_url is set.
    rate_limit_rpm: int = 0
    rate_limit_tpm: int = 0
    # HTTP limits (app/serving.py): request line and headers together (larger: 431), how long a request's
    # headers may take to arrive, how long an idle keep-alive connection stays open, and open connections
    # per process (at the cap, the oldest idle or still-reading connection makes room; none: 503).
    max_header_bytes: int = 64 * 1024
    header_timeout_seconds: float = 10.0
    keep_alive_seconds: int = 5
    max_connections: int = 1000
    # Whole multipart bodies (413 above): image edits and variations, audio transcriptions and translations.
    # File parts are spooled to disk past 1 MiB while they arrive.
    max_image_body_bytes: int = 64 * 1024 * 1024
    max_audio_body_bytes: int = 26 * 1024 * 1024
    # Absolute links this server hands out (image URLs): its public base URL, e.g. https://llm.example.com.
    # Empty: the request's own scheme and Host (validated), or X-Forwarded-Proto/-Host when trust_forwarded.
    public_url: str = ""
    trust_forwarded: bool = False
    # How `stream: true` image generations are framed: "openai" (`image_generation.partial_image` /
    # `.completed`) or "progress", as Seedream-style gateways answer (`progress`, `result`, `done`).
    # A request's `X-Understudy-Image-Stream` header picks one for itself.
    image_stream_format: str = "openai"
    # Realtime WebSocket sessions (/v1/realtime), bounded per session: one client message, the uncommitted
    # input audio, the conversation's items and their bytes, how long a socket may stay silent, and how long
    # a session may last (OpenAI: 60 minutes). Sessions per tenant in one API process.
    realtime_max_message_bytes: int = 16 * 1024 * 1024
    realtime_max_audio_bytes: int = 15 * 1024 * 1024
    realtime_max_items: int = 1000
    realtime_max_conversation_bytes: int = 64 * 1024 * 1024
    realtime_idle_seconds: float = 600.0
    realtime_max_session_seconds: float = 3600.0
    realtime_max_sessions: int = 32
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image_stream_format not in IMAGE_STREAM_FORMATS:
            raise ValueError(f"image_stream_format must be one of {', '.join(IMAGE_STREAM_FORMATS)}, not {self.image_stream_format!r}")
        if self.replay_miss not in REPLAY_MISS_MODES:
            raise ValueError(f"UNDERSTUDY_REPLAY_MISS must be one of {', '.join(REPLAY_MISS_MODES)}, not {self.replay_miss!r}")
        if self.replay and not Path(self.replay).is_dir():
            raise ValueError(f"UNDERSTUDY_REPLAY: {self.replay!r} is not a directory of cassettes (record some with UNDERSTUDY_RECORD)")
        if self.record and Path(self.record).exists() and not Path(self.record).is_dir():
            raise ValueError(f"UNDERSTUDY_RECORD: {self.record!r} exists and is not a directory")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'understudy.db').resolve()}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        """Defaults, then UNDERSTUDY_CONFIG (a TOML file), then UNDERSTUDY_* variables, then overrides."""
        env = os.environ if environ is None else environ
        values: dict = {}
        config_file = env.get("UNDERSTUDY_CONFIG")
        if config_file:
            with open(config_file, "rb") as fh:
                values.update(tomllib.load(fh))
        names = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
        for name in names:
            raw = env.get(f"UNDERSTUDY_{name.upper()}")
            if raw is not None:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(names)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        return cls(**{k: _coerce(names[k].type, v) for k, v in values.items()})


def _coerce(annotation: str, value):
    if annotation == "list[dict]":
        value = json.loads(value) if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise ValueError(f"expected a list of tables, got {value!r}")
        return value
    if annotation == "tuple[str, ...]":
        items = value.split(",") if isinstance(value, str) else value
        return tuple(item.strip() for item in items if item.strip())
    if annotation == "bool":
        return value if isinstance(value, bool) else _env_bool(str(value))
    if annotation == "int":
        return int(value)
    if annotation == "float":
        return float(value)
    if annotation == "Path":
        return Path(value)
    return value
