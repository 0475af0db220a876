"""GET /healthz: 200 once the app is serving, naming the backends in use. No auth."""
from __future__ import annotations

from litestar import get
from litestar.datastructures import State

from app.platform import Platform


@get("/healthz", sync_to_thread=False)
def healthz(state: State) -> dict:
    platform: Platform = state.platform
    return {
        "status": "ok",
        "database": "sqlite" if platform.db.is_sqlite else "postgresql",
        "blobs": platform.blobs.name,
        "jobs": platform.queue.name,
        "events": platform.bus.name,
    }
