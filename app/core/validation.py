"""Request bodies checked against the official SDK's `*Params` TypedDicts, with OpenAI's error wording.

The SDK already types every request parameter; a pydantic TypeAdapter over its TypedDict validates a
body, and the first error becomes OpenAI's 400: "Missing required parameter: 'x'.", "Invalid type for
'x': …", "Invalid value: 'v'. Supported values are: …", "Unknown parameter: 'x'.". Where it accepts
more than those types say, and why, is app/core/leniency.py.
"""
from __future__ import annotations

import asyncio
import collections.abc
import functools
import types
import typing
from typing import Any

import msgspec
from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict, is_typeddict

from app.core.errors import APIError, invalid_request
from app.core.leniency import DISCRIMINATORS, OPTIONAL_ON_INPUT

_JSON_TYPES = {
    "int": "an integer", "float": "a number", "str": "a string", "bool": "a boolean",
    "list": "an array", "dict": "an object", "NoneType": "null",
}
_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "string_type": "a string", "bool_type": "a boolean", "list_type": "an array",
    "sequence_str": "an array", "dict_type": "an object", "model_type": "an object", "typed_dict_type": "an object",
}

BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
    "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value).__name__, type(value).__name__)


def _param(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@functools.cache
def _adapter(params_type) -> TypeAdapter:
    return TypeAdapter(_input_form(params_type))


_ITERABLES = (collections.abc.Iterable, collections.abc.Sequence, list)


def _input_form(hint):
    """The SDK's type as a request is checked: lists eager (`list[...]`, not lazy `Iterable[...]`, so that a
    union tries each branch on the whole value, e.g. an array of token arrays), and the output shapes'
    fields in `OPTIONAL_ON_INPUT` optional."""
    return _rewrite(hint, ())


def _rewrite(hint, building: tuple):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if is_typeddict(hint):
        return hint if hint in building else _typeddict(hint, building)
    if origin is typing.Annotated:
        return typing.Annotated[(_rewrite(args[0], building), *hint.__metadata__)]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_rewrite(a, building) for a in args)]
    if origin in _ITERABLES and len(args) == 1:
        return list[_rewrite(args[0], building)]
    if origin in (dict, collections.abc.Mapping) and len(args) == 2:
        return dict[args[0], _rewrite(args[1], building)]
    return hint


def _typeddict(hint, building: tuple):
    building = (*building, hint)
    relaxed = OPTIONAL_ON_INPUT.get((hint.__module__, hint.__name__), frozenset())
    fields = {}
    for name, field in typing.get_type_hints(hint, include_extras=True).items():
        required = name in hint.__required_keys__
        while typing.get_origin(field) in (typing.Required, typing.NotRequired):
            required = typing.get_origin(field) is typing.Required
            field = typing.get_args(field)[0]
        field = _rewrite(field, building)
        fields[name] = typing.NotRequired[field] if name in relaxed or not required else typing.Required[field]
    rebuilt = TypedDict(hint.__name__, fields)
    if hasattr(hint, "__pydantic_config__"):  # e.g. arbitrary_types_allowed, for the SDK's file-upload unions
        rebuilt.__pydantic_config__ = hint.__pydantic_config__
    return rebuilt


@functools.cache
def _fields(params_type) -> dict[str, Any]:
    hints = typing.get_type_hints(params_type, include_extras=True)
    return {name: _unwrap(hint) for name, hint in hints.items()}


def _unwrap(hint):
    while typing.get_origin(hint) in (typing.Required, typing.NotRequired, typing.Annotated):
        hint = typing.get_args(hint)[0]
    return hint


def _check_unknown(params_type, body: dict, prefix: str = "") -> None:
    fields = _fields(params_type)
    for key, value in body.items():
        if key not in fields:
            name = f"{prefix}{key}"
            raise APIError(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
        hint = fields[key]
        if is_typeddict(hint) and isinstance(value, dict):
            _check_unknown(hint, value, f"{prefix}{key}.")


def _body_path(loc: tuple, body: Any) -> tuple:
    """The part of a pydantic error location that exists in the body: union-branch labels
    ("ChatCompletionUserMessageParam", "str", …) are dropped, keys and indexes kept."""
    path, node = [], body
    for part in loc:
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not part[:1].isupper() and part not in _BRANCH_LABELS \
                and not part.startswith(_BRANCH_PREFIXES):
            node = node.get(part)
        else:
            continue
        path.append(part)
    return tuple(path)


# Labels pydantic gives union branches that are not upper-case class names.
_BRANCH_LABELS = {"str", "int", "float", "bool", "list", "dict", "none", "function-after", "function-plain"}
_BRANCH_PREFIXES = ("literal[", "function-", "tagged-union[", "json-or-python[", "nullable[", "union[")


def _blamed(errors: list[dict], body: Any) -> dict:
    """A union fails once per branch; the failure to report is the deepest (`input[0][1]`, not `input`).
    A branch whose `type` does not match the value's is blamed for its `type` only, and only when no
    branch whose `type` matched failed as deep (then it is the `type` that is wrong)."""
    wrong_type = [e for e in errors if e["type"] == "literal_error" and e["loc"] and e["loc"][-1] in DISCRIMINATORS]
    rejected = {e["loc"][:-1] for e in wrong_type}
    others = [e for e in errors if not any(e["loc"][:len(key)] == key for key in rejected)]
    ranked = [(len(_body_path(e["loc"], body)), 1, -i, e) for i, e in enumerate(others)]
    ranked += [(len(_body_path(e["loc"], body)), 0, -i, e) for i, e in enumerate(wrong_type)]
    return max(ranked, key=lambda r: r[:3])[3] if ranked else errors[0]


def _to_api_error(error: ValidationError, body: Any) -> APIError:
    errors = error.errors(include_url=False)
    first = _blamed(errors, body)
    kind, loc = first["type"], _body_path(first["loc"], body)
    param = _param(loc)
    if kind == "missing":
        return invalid_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    value = first.get("input")
    if kind == "literal_error":
        # A union (e.g. chat messages by role) fails once per branch: offer every branch's values.
        expected = [e.get("ctx", {}).get("expected", "") for e in errors if e["type"] == "literal_error" and _body_path(e["loc"], body) == loc]
        supported = ", ".join(dict.fromkeys(x.strip() for group in expected for x in group.replace(" or ", ", ").split(",") if x.strip()))
        return invalid_request(f"Invalid value: '{value}'. Supported values are: {supported}.", param=param, code="invalid_value")
    if kind in _EXPECTED:
        return invalid_request(
            f"Invalid type for '{param}': expected {_EXPECTED[kind]}, but got {_json_type(value)} instead.",
            param=param,
            code="invalid_type",
        )
    return invalid_request(f"Invalid '{param}': {first['msg']}.", param=param, code="invalid_value")


def decode_json_object(raw: bytes) -> dict:
    try:
        body = msgspec.json.decode(raw) if raw else None
    # DecodeError, and also UnicodeDecodeError (strings that are not UTF-8) and RecursionError (deep nesting).
    except (msgspec.DecodeError, ValueError, RecursionError):
        raise invalid_request(BAD_JSON) from None
    if not isinstance(body, dict):
        raise invalid_request(BAD_JSON if body is None else "The request body must be a JSON object.")
    return body


def _consume(value: Any, loc: tuple) -> None:
    """The SDK types lists as `Iterable[...]`, which pydantic validates lazily: iterate to validate."""
    if isinstance(value, dict):
        for key, item in value.items():
            _consume(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _consume(item, (*loc, index))
    elif type(value).__name__ == "ValidatorIterator":
        index = 0
        try:
            for index, item in enumerate(value):  # noqa: B007 (index is read after an error)
                _consume(item, (*loc, index))
        except ValidationError as error:
            raise _Located(error, loc) from None


class _Located(Exception):
    def __init__(self, error: ValidationError, loc: tuple) -> None:
        self.error, self.loc = error, loc


@functools.cache
def _array_fields(params_type) -> frozenset[str]:
    return frozenset(
        key for key, hint in _fields(params_type).items()
        if typing.get_origin(hint) in (collections.abc.Iterable, collections.abc.Sequence)
    )


def _reject_strings_for_arrays(params_type, body: dict) -> None:
    arrays = _array_fields(params_type)  # per type once: this runs on every model call
    for key, value in body.items():
        if isinstance(value, str) and key in arrays:
            raise invalid_request(
                f"Invalid type for '{key}': expected an array, but got a string instead.", param=key, code="invalid_type"
            )


def validate_params(params_type, body: dict) -> dict:
    """Checks `body` against an SDK params TypedDict; returns it unchanged when valid."""
    _check_unknown(params_type, body)
    _reject_strings_for_arrays(params_type, body)
    try:
        _consume(_adapter(params_type).validate_python(body, strict=True), ())
    except ValidationError as error:
        raise _to_api_error(error, body) from None
    except _Located as located:
        raise _to_api_error(_prefixed(located.error, located.loc), body) from None
    return body


# Past this many bytes of body, checking it is Python work worth a thread: the SDK types lists as
# iterables that pydantic validates item by item as `_consume` walks them (300,000 chat messages, 10 MB:
# about a second, which the event loop must not spend).
OFFLOAD_BYTES = 256 * 1024


async def validated(params_type, body: dict, size: int) -> dict:
    """`validate_params`, off the event loop for a body of more than OFFLOAD_BYTES (`size`, its raw length)."""
    if size > OFFLOAD_BYTES:
        return await asyncio.to_thread(validate_params, params_type, body)
    return validate_params(params_type, body)


def _prefixed(error: ValidationError, loc: tuple) -> ValidationError:
    return ValidationError.from_exception_data(
        error.title,
        [{"type": e["type"], "loc": (*loc, *e["loc"]), "input": e.get("input"), "ctx": e.get("ctx", {})} for e in error.errors(include_url=False)],
    )


def parse_json_params(params_type, raw: bytes) -> dict:
    return validate_params(params_type, decode_json_object(raw))


def required_only(body: dict, name: str):
    """The value of the one parameter an endpoint takes (e.g. `metadata`, `attributes`)."""
    unknown = sorted(set(body) - {name})
    if unknown:
        raise APIError(f"Unknown parameter: '{unknown[0]}'.", param=unknown[0], code="unknown_parameter")
    if name not in body:
        raise invalid_request(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    return body[name]
