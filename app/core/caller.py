"""On whose behalf a model call is made, for usage records: context variables set where a request or a
job starts, read where usage is recorded (app/services/usage.py)."""
from __future__ import annotations

import contextvars

# The issued key (keys mode) a request came with, set by the auth middleware (and around a job, by
# app/core/queue.py): usage per `api_key_id`.
calling_key: contextvars.ContextVar[str] = contextvars.ContextVar("understudy_api_key_id", default="")
# Set (to True) around the model calls a batch makes, so their usage is recorded with batch=true.
in_batch: contextvars.ContextVar[bool] = contextvars.ContextVar("understudy_in_batch", default=False)
