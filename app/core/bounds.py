"""Numeric bounds of request parameters, as OpenAI's spec states them (minimum/maximum), in one table.

The SDK's TypedDicts carry no bounds, so `validate_params` cannot see them; each endpoint that takes
such a parameter calls `check_bounds(kind, body)` after validating the body's shape. The table is
the spec's (`openapi.yaml`, components.schemas.<Request>.properties.*.minimum/maximum); OpenAI checks
them with these codes and words: "Invalid 'temperature': decimal above maximum value. Expected a value
<= 2, but got 3.0 instead."
"""
from __future__ import annotations

from app.core.errors import invalid_request

_SAMPLING = {"temperature": ("decimal", 0, 2), "top_p": ("decimal", 0, 1)}
_PENALTIES = {"frequency_penalty": ("decimal", -2, 2), "presence_penalty": ("decimal", -2, 2)}
_RUN = {**_SAMPLING, "max_prompt_tokens": ("integer", 256, None), "max_completion_tokens": ("integer", 256, None)}

BOUNDS: dict[str, dict[str, tuple[str, float | None, float | None]]] = {
    "chat": {**_SAMPLING, **_PENALTIES, "top_logprobs": ("integer", 0, 20), "n": ("integer", 1, 128)},
    "responses": {**_SAMPLING, "top_logprobs": ("integer", 0, 20), "max_output_tokens": ("integer", 16, None)},
    "completions": {**_SAMPLING, **_PENALTIES, "best_of": ("integer", 0, 20), "logprobs": ("integer", 0, 5),
                    "max_tokens": ("integer", 0, None), "n": ("integer", 1, 128)},
    "runs": _RUN,
    "assistants": _SAMPLING,
    "embeddings": {"dimensions": ("integer", 1, None)},
}


def _shown(value, kind: str) -> str:
    return repr(float(value)) if kind == "decimal" else str(value)


def _number(low: float) -> str:
    return str(int(low)) if float(low).is_integer() else str(low)


def check_value(value, kind: str, low, high, param: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if low is not None and value < low:
        raise invalid_request(
            f"Invalid '{param}': {kind} below minimum value. Expected a value >= {_number(low)}, but got {_shown(value, kind)} instead.",
            param=param, code=f"{kind}_below_min_value")
    if high is not None and value > high:
        raise invalid_request(
            f"Invalid '{param}': {kind} above maximum value. Expected a value <= {_number(high)}, but got {_shown(value, kind)} instead.",
            param=param, code=f"{kind}_above_max_value")


def check_bounds(kind: str, body: dict, prefix: str = "") -> None:
    """Raises OpenAI's 400 for the first parameter of `body` outside the spec's range for endpoint `kind`."""
    for name, (number_kind, low, high) in BOUNDS[kind].items():
        check_value(body.get(name), number_kind, low, high, f"{prefix}{name}")
