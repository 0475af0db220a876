"""Everything a request or a job needs, built once and fully initialised: storage, queue, bus, services.

The API's lifespan and the job runner (and later an arq worker) open the same Platform, so a job
function sees exactly the services a controller does.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from app.core.auth import Authenticator
from app.core.events import EventBus
from app.events import InMemoryEventBus, RedisEventBus
from app.inference.providers.offline import OfflineProvider
from app.inference.router import InferenceRouter, build_router
from app.services.agent.tools import BuiltinTools
from app.services.assistants.assistants import AssistantsService
from app.services.assistants.code_runner import CodeRunner
from app.services.assistants.executor import RunExecutor
from app.services.assistants.run_store import RunStore
from app.services.assistants.runs import RunsService
from app.services.assistants.thread_messages import ThreadMessagesService
from app.services.assistants.threads import ThreadsService
from app.services.audio import AudioService
from app.services.voices import VoicesService
from app.services.batches.execute import BatchJob
from app.services.batches.lines import LineServices
from app.services.batches.message_batches import MessageBatchesService
from app.services.batches.service import BatchesService
from app.services.batches.store import BatchStore
from app.services.chat import ChatService
from app.services.chatkit.service import ChatKitService
from app.services.containers.service import ContainersService
from app.services.conversations import ConversationsService
from app.services.evals.execute import EvalRunJob
from app.services.evals.grader_api import GraderEndpoints
from app.services.evals.graders import Graders
from app.services.evals.reward import RewardGrader
from app.services.evals.service import EvalsService
from app.services.evals.store import EvalStore
from app.services.files import FilesService
from app.services.fine_tuning.permissions import CheckpointPermissionsService
from app.services.fine_tuning.service import FineTuningService
from app.services.gemini import GeminiService
from app.services.images import ImagesService
from app.services.provenance import Provenance, load_secret
from app.services.inference import InferenceService
from app.services.rate_limits import RateLimiter
from app.services.relay_scope import RelayScope
from app.services.realtime.respond import Responder
from app.services.realtime.secrets import ClientSecrets, MemorySecrets, RedisSecrets
from app.services.messages import MessagesService
from app.services.models import ModelsService
from app.services.responses.service import ResponsesService
from app.services.script.service import ScriptService, load_script
from app.services.skills.service import SkillsService
from app.services.skills.shell import ShellRunner
from app.services.script.state import MemoryScriptState, RedisScriptState
from app.services.uploads import UploadsService
from app.services.usage import UsageRecorder
from app.services.api_keys import ApiKeysService
from app.services.vector_stores.batches import FileBatchesService
from app.services.vector_stores.files import VectorStoreFilesService
from app.services.traces import TracesService
from app.services.vector_stores.ingest import Ingestor
from app.services.vector_stores.links import StoreFileLinks, StoreRows
from app.services.vector_stores.search import SearchService
from app.services.vector_stores.stores import VectorStoresService
from app.services.videos.service import VideosService
from app.settings import Settings
from storage.blobs import BlobStore, open_blob_store
from storage.db import Database
from storage.selftest import check_storage_internals
from storage.vectors import VectorIndex
from app.core.queue import JobQueue

log = logging.getLogger("understudy")


@dataclass
class Platform:
    settings: Settings
    db: Database
    blobs: BlobStore
    bus: EventBus
    queue: JobQueue
    auth: Authenticator
    files: FilesService
    uploads: UploadsService
    models: ModelsService
    router: InferenceRouter
    inference: InferenceService
    chat: ChatService
    messages: MessagesService
    gemini: GeminiService
    vector_index: VectorIndex
    vector_stores: VectorStoresService
    vector_store_files: VectorStoreFilesService
    file_batches: FileBatchesService
    vector_search: SearchService
    ingestor: Ingestor
    assistants: AssistantsService
    threads: ThreadsService
    thread_messages: ThreadMessagesService
    runs: RunsService
    run_executor: RunExecutor
    conversations: ConversationsService
    responses: ResponsesService
    batches: BatchesService
    message_batches: MessageBatchesService
    batch_job: BatchJob
    fine_tuning: FineTuningService
    evals: EvalsService  # /v1/evals: evals, runs, output items
    eval_job: EvalRunJob  # grades a run's rows (the execute_eval_run job)
    graders: GraderEndpoints  # /v1/fine_tuning/alpha/graders
    checkpoint_permissions: CheckpointPermissionsService  # projects allowed to use a fine-tuned checkpoint
    usage: UsageRecorder
    rate_limits: RateLimiter
    code_runner: CodeRunner  # code_interpreter sandboxes, a bounded number at once
    containers: ContainersService  # the code interpreter's persistent work dirs
    api_keys: ApiKeysService  # issued keys and projects (keys mode, the admin API)
    traces: TracesService  # what the Agents SDK's exporter sent
    skills: SkillsService  # /v1/skills: their versions' files, for the shell tool
    images: ImagesService
    provenance: Provenance  # the signed marker on drawn images, and its check
    audio: AudioService
    videos: VideosService  # /v1/videos: generation jobs, their assets, characters
    voices: VoicesService  # custom voices and their consent recordings
    chatkit: ChatKitService  # ChatKit sessions, threads and items
    script: ScriptService  # scripted answers and faults, and the log of model calls (/_understudy/v1)
    realtime: Responder  # what Realtime sessions' responses and audio go through (inference, audio, rate limits)
    realtime_secrets: ClientSecrets  # ek_ client secrets: in memory, or in Redis in team mode

    async def close(self) -> None:
        await self.queue.stop()
        await self.usage.close()  # the last usage sums, written after the jobs stop
        await self.rate_limits.close()
        await self.script.state.close()
        await self.realtime_secrets.store.close()
        await self.router.close()
        await self.auth.close()  # its revocation listener, before the bus it listens on
        await self.bus.close()
        await self.blobs.close()
        await self.db.dispose()


def build_script(settings: Settings) -> ScriptService:
    """Rules from UNDERSTUDY_SCRIPT (a bad file stops the start with the reason); the per-tenant state
    in Redis when workers in other processes make model calls too."""
    rules, strict = load_script(settings.script) if settings.script else ([], False)
    state = RedisScriptState(settings.redis_url) if settings.redis_url else MemoryScriptState()
    return ScriptService(state, rules, strict)


async def open_platform(settings: Settings, *, run_jobs: bool = True) -> Platform:
    from workers.jobs import JOBS
    from workers.runner import InProcessRunner

    await check_storage_internals()  # before anything is written through them
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    await db.migrate()
    blobs = open_blob_store(settings)
    vector_index = VectorIndex(db, blobs)
    store_rows = StoreRows(db)
    store_links = StoreFileLinks(db, vector_index, store_rows)
    # A deleted File leaves every vector store it was in (the links sit below both services).
    files = FilesService(db, blobs, max_file_bytes=settings.max_file_bytes, on_delete=store_links.forget_file)
    models = ModelsService(tuple(settings.extra_models), strict=settings.strict_models)
    router = build_router(settings, OfflineProvider(chunk_delay_ms=settings.offline_chunk_delay_ms))
    usage = UsageRecorder(db)
    script = build_script(settings)
    inference = InferenceService(router, models, usage, script=script)
    rate_limits = RateLimiter(db, settings.rate_limit_rpm, settings.rate_limit_tpm, settings.redis_url)
    await rate_limits.start()
    ctx: dict = {}
    queue: JobQueue
    bus: EventBus
    if settings.redis_url:  # team mode: jobs run in arq workers, their events cross processes through Redis
        from workers.arq_queue import ArqQueue

        queue = await ArqQueue(settings.redis_url).connect()
        bus = RedisEventBus(settings.redis_url)
    else:
        queue = InProcessRunner(db, JOBS, ctx, concurrency=settings.job_concurrency)
        bus = InMemoryEventBus()
    vector_store_files = VectorStoreFilesService(db, files, store_rows, store_links, queue)
    vector_stores = VectorStoresService(db, vector_index, store_rows, vector_store_files, embedding_model=settings.embedding_model)
    thread_messages = ThreadMessagesService(db, files, vector_stores)
    assistants = AssistantsService(db, models, vector_stores, files, inference)  # inference: models are checked as a run resolves them
    threads = ThreadsService(db, thread_messages, vector_stores, files)
    vector_search = SearchService(db, store_rows, vector_index, inference)
    run_store = RunStore(db)
    conversations = ConversationsService(db)
    code_runner = CodeRunner(settings.sandbox_concurrency)
    # The built-in tools of the agent loop (runs and responses).
    provenance = Provenance(load_secret(settings.provenance_secret, settings.data_dir))
    images = ImagesService(blobs, models, inference, provenance)
    skills = SkillsService(db, blobs, max_bytes=settings.max_skill_bytes)
    containers = ContainersService(db, blobs, files, skills, max_bytes=settings.container_max_bytes,
                                   minute_seconds=settings.container_minute_seconds)
    tools = BuiltinTools(vector_search, files, code_runner, images, containers, shell=ShellRunner(skills, files, code_runner, containers))
    relay_scope = RelayScope(db)  # ids a relayed body may name: the upstream sees one key for every tenant
    chat = ChatService(db, inference, relay_scope)
    messages = MessagesService(inference, relay_scope)
    responses = ResponsesService(db, bus, queue, inference, conversations, tools, files, relay_scope)
    batch_store = BatchStore(db)
    eval_store = EvalStore(db)
    graders = Graders(inference, code_runner)  # model graders through the router, python graders in the sandbox
    voices = VoicesService(db, blobs)
    audio = AudioService(models, inference, voices)
    platform = Platform(
        settings=settings,
        db=db,
        blobs=blobs,
        bus=bus,
        queue=queue,
        auth=Authenticator(db, settings.auth, bus),
        files=files,
        uploads=UploadsService(
            db, blobs, files, max_upload_bytes=settings.max_upload_bytes, max_part_bytes=settings.max_part_bytes, ttl_seconds=settings.upload_ttl_seconds
        ),
        models=models,
        router=router,
        inference=inference,
        chat=chat,
        messages=messages,
        gemini=GeminiService(inference, relay_scope),
        vector_index=vector_index,
        vector_stores=vector_stores,
        vector_store_files=vector_store_files,
        file_batches=FileBatchesService(db, store_rows, vector_store_files),
        vector_search=vector_search,
        ingestor=Ingestor(db, files, vector_store_files, store_rows, vector_index, inference),
        assistants=assistants,
        threads=threads,
        thread_messages=thread_messages,
        runs=RunsService(run_store, bus, queue, assistants, threads, thread_messages, inference, settings),
        run_executor=RunExecutor(run_store, bus, inference, tools, threads, assistants, expiry_seconds=settings.run_expiry_seconds),
        conversations=conversations,
        responses=responses,
        batches=BatchesService(batch_store, files, queue, window_seconds=settings.batch_window_seconds),
        message_batches=MessageBatchesService(batch_store, blobs, queue, window_seconds=settings.batch_window_seconds),
        # Batch lines run through the live endpoints' own services.
        batch_job=BatchJob(batch_store, blobs, files, LineServices(chat, responses, messages, inference), concurrency=settings.batch_concurrency),
        fine_tuning=FineTuningService(db, files, queue, models, settings, RewardGrader(graders, inference)),
        evals=EvalsService(eval_store, files, inference, queue, max_items=settings.eval_max_items),
        eval_job=EvalRunJob(eval_store, files, chat, inference, graders, concurrency=settings.eval_concurrency, max_items=settings.eval_max_items),
        graders=GraderEndpoints(graders),
        checkpoint_permissions=CheckpointPermissionsService(db, check_projects=settings.auth == "keys"),
        usage=usage,
        rate_limits=rate_limits,
        code_runner=code_runner,
        containers=containers,
        api_keys=ApiKeysService(db, bus),
        traces=TracesService(db),
        skills=skills,
        images=images,
        provenance=provenance,
        audio=audio,
        videos=VideosService(db, blobs, files, queue, inference, step_seconds=settings.video_step_seconds,
                             poll_seconds=settings.video_poll_seconds,
                             max_reference_bytes=settings.max_video_reference_bytes, max_clip_bytes=settings.max_video_clip_bytes),
        voices=voices,
        chatkit=ChatKitService(db),
        script=script,
        realtime=Responder(inference, audio, rate_limits),
        realtime_secrets=ClientSecrets(RedisSecrets(settings.redis_url) if settings.redis_url else MemorySecrets()),
    )
    usage.start()
    ctx["platform"] = platform
    if run_jobs:
        await platform.queue.start()
    log.info("storage: %s, blobs: %s, jobs: %s, events: %s", "sqlite" if db.is_sqlite else "postgresql", blobs.name, platform.queue.name, platform.bus.name)
    return platform
