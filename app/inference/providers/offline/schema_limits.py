"""How much work a JSON schema may ask of the offline model, and the shape a schema must have.

A schema comes from the client (tool parameters, structured outputs), so it is hostile input: a
`minLength` of 10**9, `minItems` nested three deep, or a `$ref` that every value must follow would
otherwise make the generator allocate or recurse without bound. The limits, and why:

- `MAX_STRING_LENGTH` (100,000 characters, about 25k tokens): longer than any string a chat model is
  asked to write in one field; `minLength` above it is refused.
- `MAX_ITEMS` (10,000) and `MAX_PROPERTIES` (1,000): `minItems` / `minProperties` above them are
  refused (OpenAI's structured outputs allow 5,000 properties in a whole schema).
- `MAX_DEPTH` (64): nesting of the generated value, counting each `$ref`/`allOf`/`anyOf` hop; a
  recursive `$ref` that no valid value can leave hits it (OpenAI allows 10 levels of nesting).
- `MAX_DOCUMENT_CHARS` (1 MiB of JSON, ~250k tokens, more than any model's output limit) and
  `MAX_WORK` (200,000 generated nodes, retries included): the smallest document a schema admits must fit,
  or the request is refused; optional parts are dropped before the budget runs out.
- `MAX_SECONDS` (2 s) of generation, checked as it goes; `MAX_SCHEMA_NODES` (20,000) subschemas walked.

`check_structure` is the cheap part (one walk of the schema as written, no `$ref` followed): keyword
types (`properties` must be an object, `minItems` a non-negative integer, ...), the caps above, and local
`$ref`s that resolve. The generator (schema.py) enforces the rest with a `Budget`.
"""
from __future__ import annotations

import math
import time
from typing import Any

from app.core.errors import APIError, invalid_request

MAX_STRING_LENGTH = 100_000
MAX_ITEMS = 10_000
MAX_PROPERTIES = 1_000
MAX_DEPTH = 64
MAX_DOCUMENT_CHARS = 1 << 20
MAX_WORK = 200_000
MAX_SECONDS = 2.0
MAX_SCHEMA_NODES = 20_000
MAX_PATTERN_LENGTH = 1_000  # longer patterns are not used to generate strings (they are still accepted)

_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMAS = ("additionalProperties", "additionalItems", "unevaluatedProperties", "unevaluatedItems", "contains", "not",
            "propertyNames", "if", "then", "else")
_COUNTS = {"minLength": MAX_STRING_LENGTH, "maxLength": None, "minItems": MAX_ITEMS, "maxItems": None,
           "minProperties": MAX_PROPERTIES, "maxProperties": None, "minContains": MAX_ITEMS, "maxContains": None}
_RANGES = (("minLength", "maxLength"), ("minItems", "maxItems"), ("minProperties", "maxProperties"))
_NUMBERS = ("minimum", "maximum", "multipleOf")


class SchemaError(ValueError):
    """A schema the offline model refuses: `context` is the path of keys to the offending subschema."""

    def __init__(self, detail: str, context: tuple = ()) -> None:
        super().__init__(detail)
        self.detail, self.context = detail, tuple(context)

    def message(self, subject: str) -> str:
        """OpenAI's wording: "Invalid schema for function 'f': In context=('properties', 'x'), ..."."""
        return f"Invalid schema for {subject}: In context={self.context!r}, {self.detail}."


class Overflow(Exception):
    """Raised inside the generator when a budget runs out; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Budget:
    """Characters of JSON produced, nodes generated (retries and discarded attempts included) and the
    deadline. `charge` raises Overflow; `mark`/`restore` undo the size of a discarded attempt."""

    def __init__(self, chars: int = MAX_DOCUMENT_CHARS, work: int = MAX_WORK, seconds: float = MAX_SECONDS) -> None:
        self.max_chars, self.max_work = chars, work
        self.deadline = time.monotonic() + seconds
        self.chars = 0
        self.work = 0

    def charge(self, chars: int) -> None:
        self.chars += chars
        self.work += 1
        if self.chars > self.max_chars:
            raise Overflow("size")
        if self.work > self.max_work:
            raise Overflow("work")
        if not self.work & 1023 and time.monotonic() > self.deadline:
            raise Overflow("time")

    def mark(self) -> int:
        return self.chars

    def restore(self, mark: int) -> None:
        self.chars = mark


def _is_count(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, float) and math.isfinite(value) and value >= 0 and value.is_integer()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def resolve_pointer(root: Any, ref: str) -> tuple[bool, Any]:
    """(found, target) for a local `$ref` (`#`, `#/$defs/x`, JSON-pointer escapes)."""
    node = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _check_node(node: dict, context: tuple, root: Any, caps: bool) -> list[tuple[Any, tuple]]:
    """Checks one subschema's keywords; returns its child subschemas (with their contexts)."""
    children: list[tuple[Any, tuple]] = []
    kind = node.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not kinds or not all(isinstance(k, str) and k in _TYPES for k in kinds):
            raise SchemaError(f"'type' must be one of {', '.join(_TYPES)} (or a non-empty list of them), not {kind!r}", context)
    for key in _SCHEMA_MAPS:
        if key in node:
            value = node[key]
            if not isinstance(value, dict):
                raise SchemaError(f"'{key}' must be an object of schemas, not {type(value).__name__}", context)
            children += [(sub, (*context, key, name)) for name, sub in value.items()]
    for key in _SCHEMA_LISTS:
        if key in node:
            value = node[key]
            if not isinstance(value, list) or (key != "prefixItems" and not value):
                raise SchemaError(f"'{key}' must be a non-empty array of schemas", context)
            children += [(sub, (*context, key, index)) for index, sub in enumerate(value)]
    for key in _SCHEMAS:
        if key in node:
            children.append((node[key], (*context, key)))
    if "items" in node:
        items = node["items"]
        if isinstance(items, list):  # draft 4-7 tuple form
            children += [(sub, (*context, "items", index)) for index, sub in enumerate(items)]
        else:
            children.append((items, (*context, "items")))
    if "required" in node and not (isinstance(node["required"], list) and all(isinstance(k, str) for k in node["required"])):
        raise SchemaError("'required' must be an array of strings", context)
    if "enum" in node and not isinstance(node["enum"], list):
        raise SchemaError("'enum' must be an array", context)
    for key, cap in _COUNTS.items():
        if key in node:
            value = node[key]
            if not _is_count(value):
                raise SchemaError(f"'{key}' must be a non-negative integer, not {value!r}"[:200], context)
            if caps and cap is not None and value > cap:
                raise SchemaError(f"'{key}' is {int(value)}, above the offline model's limit of {cap}", context)
    for low, high in _RANGES:
        if low in node and high in node and node[low] > node[high]:
            raise SchemaError(f"'{low}' ({int(node[low])}) is greater than '{high}' ({int(node[high])}): no value can satisfy it", context)
    for key in _NUMBERS:
        if key in node and not _is_number(node[key]):
            raise SchemaError(f"'{key}' must be a finite number, not {node[key]!r}"[:200], context)
    if "multipleOf" in node and node["multipleOf"] <= 0:
        raise SchemaError("'multipleOf' must be greater than 0", context)
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in node and not (isinstance(node[key], bool) or _is_number(node[key])):
            raise SchemaError(f"'{key}' must be a finite number, not {node[key]!r}"[:200], context)
    for key in ("pattern", "format", "$ref"):
        if key in node and not isinstance(node[key], str):
            raise SchemaError(f"'{key}' must be a string, not {type(node[key]).__name__}", context)
    ref = node.get("$ref")
    if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")) and not resolve_pointer(root, ref)[0]:  # JSON pointers; anchors and URLs pass
        raise SchemaError(f"'$ref' {ref[:200]!r} does not resolve to anything in this schema", context)
    return children


def check_structure(schema: Any, *, caps: bool = True) -> None:
    """Raises SchemaError for a schema whose keywords have the wrong types or (`caps`) exceed the
    offline model's caps. Without `caps`: only what any provider would refuse."""
    if not isinstance(schema, dict):
        raise SchemaError(f"the schema must be an object, not {type(schema).__name__}")
    stack: list[tuple[Any, tuple]] = [(schema, ())]
    seen = 0
    while stack:
        node, context = stack.pop()
        seen += 1
        if seen > MAX_SCHEMA_NODES:
            raise SchemaError(f"the schema has more than {MAX_SCHEMA_NODES} subschemas", ())
        if isinstance(node, bool):
            continue
        if not isinstance(node, dict):
            raise SchemaError(f"a schema must be an object or a boolean, not {type(node).__name__}", context)
        stack.extend(reversed(_check_node(node, context, schema, caps)))


def schema_api_error(error: SchemaError, param: str, subject: str, *, code: str | None = None) -> APIError:
    """The 400 for a refused schema, naming the request parameter that holds it."""
    return invalid_request(error.message(subject), param=param, code=code)
