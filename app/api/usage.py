"""/v1/organization/usage/completions: usage per project and model, in OpenAI's shape."""
from __future__ import annotations

USAGE_HANDLERS: list = []
