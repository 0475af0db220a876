"""create_app(settings) -> Litestar. The lifespan opens the platform (storage, jobs, bus, services)
and closes it on shutdown."""
from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import asynccontextmanager

from litestar import Litestar, Router

from app.api.admin import ADMIN_HANDLERS
from app.api.deps import AuthMiddleware
from app.api.rate_limits import RateLimitMiddleware
from app.api.usage import USAGE_HANDLERS
from app.api.errors import EXCEPTION_HANDLERS
from app.api.anthropic import anthropic_router
from app.api.assistants import AssistantsController
from app.api.audio import AudioController
from app.api.chat import ChatCompletionsController
from app.api.completions import STATELESS_HANDLERS
from app.api.files import FilesController
from app.api.gemini import gemini_routers
from app.api.headers import OpenAIHeaders
from app.api.health import healthz
from app.api.limits import HeaderLimit
from app.api.links import check_public_url
from app.api.images import ImagesController, image_content
from app.api.models import ModelsController
from app.api.provenance import PROVENANCE_HANDLERS
from app.api.chatkit import CHATKIT_HANDLERS, CHATKIT_UNDERSTUDY_HANDLERS
from app.api.voices import VOICES_HANDLERS
from app.api.batches import BATCHES_HANDLERS
from app.api.containers import CONTAINERS_HANDLERS
from app.api.conversations import CONVERSATIONS_HANDLERS
from app.api.evals import EVALS_HANDLERS
from app.api.checkpoint_permissions import checkpoint_permissions_router
from app.api.fine_tuning import FINE_TUNING_HANDLERS
from app.api.responses import RESPONSES_HANDLERS
from app.api.realtime import REALTIME_HANDLERS
from app.api.realtime_sessions import REALTIME_SESSION_HANDLERS
from app.api.runs import RunsController
from app.api.threads import ThreadsController
from app.api.script import SCRIPT_HANDLERS
from app.api.skills import SkillsController
from app.api.traces import TRACE_INGEST_HANDLERS, TRACE_READ_HANDLERS
from app.api.uploads import UploadsController
from app.api.vector_stores import VectorStoresController
from app.api.videos import VIDEOS_HANDLERS
from app.core import redaction, sse
from app.platform import Platform, open_platform
from app.settings import Settings

log = logging.getLogger("understudy")

API_CONTROLLERS = [FilesController, UploadsController, ModelsController, ChatCompletionsController, VectorStoresController, *STATELESS_HANDLERS, ImagesController, AudioController, AssistantsController, ThreadsController, RunsController, *RESPONSES_HANDLERS, *CONVERSATIONS_HANDLERS, *BATCHES_HANDLERS, *FINE_TUNING_HANDLERS, *EVALS_HANDLERS, *CONTAINERS_HANDLERS, *TRACE_INGEST_HANDLERS, SkillsController, *REALTIME_HANDLERS, *REALTIME_SESSION_HANDLERS, *VIDEOS_HANDLERS, *PROVENANCE_HANDLERS, *VOICES_HANDLERS, *CHATKIT_HANDLERS]

UNDERSTUDY_HANDLERS = [*TRACE_READ_HANDLERS, *SCRIPT_HANDLERS, *CHATKIT_UNDERSTUDY_HANDLERS]


async def _sweep_periodically(platform: Platform) -> None:
    while True:
        try:
            await platform.queue.enqueue("sweep_expired", key="sweep_expired")
        except Exception:  # a failed sweep must not end the loop
            log.exception("could not enqueue the expiry sweep")
        await asyncio.sleep(platform.settings.sweep_interval_seconds)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    if settings.public_url:
        check_public_url(settings.public_url)  # refuse to start with a link base clients could not use

    @asynccontextmanager
    async def lifespan(app: Litestar):
        platform = await open_platform(settings)
        app.state.platform = platform
        sweeper = asyncio.create_task(_sweep_periodically(platform))
        # What start-up built (the SDK's types, validators, the model catalogue) lives as long as the
        # process: keep it out of every garbage collection from now on.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            sweeper.cancel()
            await platform.close()

    app = Litestar(
        route_handlers=[
            healthz,
            image_content,  # unauthenticated, like OpenAI's temporary image URLs
            Router(path="/v1", route_handlers=API_CONTROLLERS, middleware=[AuthMiddleware, RateLimitMiddleware]),
            # Understudy's own endpoints, under a prefix OpenAI does not use, with the same keys and limits.
            Router(path="/_understudy/v1", route_handlers=UNDERSTUDY_HANDLERS, middleware=[AuthMiddleware, RateLimitMiddleware]),
            # The admin API: its handlers check the admin key themselves (app/api/admin_auth.py).
            Router(path="/v1/organization", route_handlers=[*ADMIN_HANDLERS, *USAGE_HANDLERS]),
            # OpenAI wants an admin key here: its handlers authenticate themselves (keys mode: the admin key).
            checkpoint_permissions_router,
            anthropic_router,
            *gemini_routers,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        openapi_config=None,
        logging_config=None,
    )
    # Outermost, so even a 404 for an unknown route (or a 431 for oversized headers) carries OpenAI's headers.
    app.asgi_handler = OpenAIHeaders(HeaderLimit(app.asgi_handler, settings.max_header_bytes))
    redaction.install()  # no `?key=` in the access log
    sse.install_log_filter()  # a scripted broken stream is not a server error
    return app
