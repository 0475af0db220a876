"""OpenAI's `metadata`: at most 16 string pairs, keys up to 64 characters, values up to 512."""
from __future__ import annotations

from app.core.errors import invalid_request

MAX_PAIRS, MAX_KEY, MAX_VALUE = 16, 64, 512


def check_metadata(metadata, param: str = "metadata") -> dict | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise invalid_request(f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type")
    if len(metadata) > MAX_PAIRS:
        raise invalid_request(
            f"Invalid '{param}': too many properties. Expected at most {MAX_PAIRS}, but got {len(metadata)}.",
            param=param, code="object_above_max_properties",
        )
    for key, value in metadata.items():
        if len(key) > MAX_KEY:
            raise invalid_request(
                f"Invalid '{param}': key '{key[:20]}…' is longer than {MAX_KEY} characters.", param=f"{param}.{key}", code="string_above_max_length"
            )
        if not isinstance(value, str):
            raise invalid_request(f"Invalid type for '{param}.{key}': expected a string.", param=f"{param}.{key}", code="invalid_type")
        if len(value) > MAX_VALUE:
            raise invalid_request(
                f"Invalid '{param}.{key}': string too long. Expected a string with maximum length {MAX_VALUE}, but got {len(value)}.",
                param=f"{param}.{key}", code="string_above_max_length",
            )
    return metadata


def metadata_filters(query_items) -> dict[str, str]:
    """`metadata[key]=value` query parameters (how list endpoints filter by metadata)."""
    filters = {}
    for name, value in query_items:
        if name.startswith("metadata[") and name.endswith("]"):
            filters[name[len("metadata["):-1]] = value
    return filters
