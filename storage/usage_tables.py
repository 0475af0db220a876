"""Tables for usage records and per-project rate limits (team mode, issue 8). Imported by storage.models."""
from __future__ import annotations
