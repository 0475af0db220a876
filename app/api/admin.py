"""/v1/organization/projects, …/api_keys, /v1/organization/admin_api_keys: OpenAI's admin API shapes."""
from __future__ import annotations

ADMIN_HANDLERS: list = []
