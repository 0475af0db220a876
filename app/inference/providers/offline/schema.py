"""A value that validates against a JSON schema: tool-call arguments and structured outputs.

The offline model's promise is that a client's parsing code runs against its output exactly as against
a real model's: arguments validate against the tool's `parameters`, `json_schema` replies against the
schema. Values are drawn from a seeded `random.Random`, so they repeat with the request, and strings
prefer the words of the prompt (`words`), so they read as if they referred to it.

The schema is the client's, so generation is bounded (schema_limits.py): a `Budget` counts the JSON
produced, the nodes generated and the time. Optional parts (properties not required, array items beyond
`minItems`) are attempts: one that would overflow the budget is dropped, and the rest of the document is
then generated lean (required parts only). If even that overflows — the smallest value the schema admits
is too big, or a recursive `$ref` has no way out — `SchemaError` says so; `check_schema` asks exactly
that question before a request is accepted.
"""
from __future__ import annotations

import json
import math
import random
from typing import Any, Callable, Sequence

from app.inference.providers.offline.schema_limits import (
    MAX_DEPTH, MAX_DOCUMENT_CHARS, MAX_SECONDS, MAX_WORK, Budget, Overflow, SchemaError, check_structure, resolve_pointer,
)
from app.inference.providers.offline.schema_scalars import MAX_WORD, Scalars, count_of

_SOFT_DEPTH = 6  # past this, only what the schema requires (and non-recursive union branches)
_LEAN_WORD = 16
# What check_schema generates strings from: as long as lean strings get, so its verdict holds for any prompt.
_CHECK_WORDS = tuple(f"{'w' * (_LEAN_WORD - 2)}{i:02d}" for i in range(12))
_FILLER = ("alpha", "bravo", "delta", "echo", "sample", "value", "item", "note", "offline", "example")
_SKIP = object()
_SCALARS = ("null", "string", "integer", "number", "boolean")
_REFUSALS = {
    "size": f"the smallest value it admits is larger than the offline model's limit of {MAX_DOCUMENT_CHARS} characters of JSON",
    "depth": f"its values nest deeper than {MAX_DEPTH} levels (a recursive '$ref' that every value must follow has no finite value)",
    "work": f"generating a value for it takes more than {MAX_WORK} steps",
    "time": f"generating a value for it takes longer than {MAX_SECONDS:g} seconds",
}


def value_for_schema(schema: Any, rng: random.Random, *, words: Sequence[str] = (), root: Any = None,
                     budget: Budget | None = None) -> Any:
    """A JSON value valid against `schema` (draft 2020-12 / OpenAI's structured-output subset), within
    the offline model's bounds; SchemaError when no value fits them."""
    generator = _Generator(rng, words, schema if root is None else root, budget or Budget())
    mark = generator.budget.mark()
    try:
        return generator.value(schema, 0, "")
    except Overflow as overflow:
        if overflow.reason == "time":
            raise SchemaError(_REFUSALS["time"]) from None
    except RecursionError:
        raise SchemaError(_REFUSALS["depth"]) from None
    generator.budget.restore(mark)  # the whole document again, lean: required parts only
    generator.budget.work = 0
    generator.go_lean()
    try:
        return generator.value(schema, 0, "")
    except Overflow as overflow:
        raise SchemaError(_REFUSALS[overflow.reason]) from None
    except RecursionError:
        raise SchemaError(_REFUSALS["depth"]) from None


def check_schema(schema: Any) -> None:
    """Raises SchemaError unless the offline model can answer with a value of `schema` within bounds:
    the keywords' shapes and caps, then the smallest value it admits (generated, lean)."""
    check_structure(schema)
    generator = _Generator(random.Random(0), _CHECK_WORDS, schema, Budget())
    generator.go_lean()
    try:
        generator.value(schema, 0, "")
    except Overflow as overflow:
        raise SchemaError(_REFUSALS[overflow.reason]) from None
    except RecursionError:
        raise SchemaError(_REFUSALS["depth"]) from None


def _freeze(value: Any) -> Any:
    """A hashable stand-in that compares as Python compares JSON values (uniqueItems)."""
    if isinstance(value, dict):
        return ("object", frozenset((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_freeze(v) for v in value))
    return value


class _Generator(Scalars):
    def __init__(self, rng: random.Random, words: Sequence[str], root: Any, budget: Budget) -> None:
        self.rng = rng
        self.words = [w[:MAX_WORD] for w in words if isinstance(w, str) and w] or list(_FILLER)
        self.root = root
        self.budget = budget
        self.lean = False  # no optional parts from now on
        self._sizes: dict = {}  # id(value) -> JSON size; ("smallest", id(enum)) -> index

    # -- budget -------------------------------------------------------------------------------------
    def go_lean(self) -> None:
        """From now on: required parts only, strings of one short word (what check_schema measures)."""
        self.lean = True
        self.words = [w[:_LEAN_WORD] for w in self.words]

    def optional(self, make: Callable[[], Any]) -> Any:
        """`make()`, or _SKIP when it would overflow the budget (then the rest of the document is lean)."""
        if self.lean:
            return _SKIP
        mark = self.budget.mark()
        try:
            return make()
        except Overflow as overflow:
            if overflow.reason == "time":
                raise
            self.budget.restore(mark)
            self.go_lean()
            return _SKIP

    def literal(self, value: Any) -> Any:
        """A value taken from the schema (const, enum), charged at its JSON size (measured once)."""
        size = self._sizes.get(id(value))
        if size is None:
            size = self._sizes[id(value)] = len(json.dumps(value, ensure_ascii=False)) if isinstance(value, (dict, list, str)) else 8
        self.budget.charge(size)
        return value

    def smallest(self, values: list) -> Any:
        key = ("smallest", id(values))
        if key not in self._sizes:
            self._sizes[key] = min(range(len(values)), key=lambda i: len(json.dumps(values[i], ensure_ascii=False)))
        return values[self._sizes[key]]

    # -- dispatch -----------------------------------------------------------------------------------
    def value(self, schema: Any, depth: int, name: str) -> Any:
        if depth > MAX_DEPTH:
            raise Overflow("depth")
        self.budget.charge(0)
        if schema is True or schema is None or schema == {}:
            return self.string({}, name)
        if schema is False or not isinstance(schema, dict):
            self.budget.charge(4)
            return None
        if isinstance(schema.get("$ref"), str):
            target = self.resolve(schema["$ref"])
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return self.value(_merge(target, rest) if rest and isinstance(target, dict) else target, depth + 1, name)
        if isinstance(schema.get("allOf"), list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part["$ref"]) if isinstance(part, dict) and isinstance(part.get("$ref"), str) else part
                merged = _merge(merged, part if isinstance(part, dict) else {})
            return self.value(merged, depth + 1, name)
        if "const" in schema:
            return self.literal(schema["const"])
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.literal(self.smallest(schema["enum"]) if self.lean else self.rng.choice(schema["enum"]))
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                return self.union(schema[key], rest, depth, name)
        kind = self.kind(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth, name)
        if kind == "integer":
            return self.scalar(self.integer(schema))
        if kind == "number":
            return self.scalar(self.number(schema))
        if kind == "boolean":
            return self.scalar(self.rng.random() < 0.5)
        if kind == "null":
            return self.scalar(None)
        return self.string(schema, name)

    def scalar(self, value: Any) -> Any:
        self.budget.charge(len(str(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else 5)
        return value

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        found, node = resolve_pointer(self.root, ref)
        return node if found else {}

    def union(self, branches: list, rest: dict, depth: int, name: str) -> Any:
        """The first branch, as the brief of the offline model says; deep in a recursive schema, the first
        branch that does not recurse, so generation ends. Lean, each branch in that order of preference
        until one fits the budget."""
        def build(branch: Any) -> Any:
            return self.value(_merge(rest, branch) if rest and isinstance(branch, dict) else branch, depth + 1, name)

        if not self.lean:
            return build(self.branch(branches, depth))
        failure = None
        for branch in sorted(branches, key=self.recursion_rank):
            mark = self.budget.mark()
            try:
                return build(branch)
            except Overflow as overflow:
                if overflow.reason in ("time", "work"):
                    raise
                self.budget.restore(mark)
                failure = overflow
        raise failure

    def recursion_rank(self, branch: Any) -> int:
        if not isinstance(branch, dict):
            return 1
        if "$ref" in branch:
            return 2
        return 0 if self.kind(branch) in _SCALARS else 1

    def branch(self, branches: list, depth: int) -> Any:
        if depth >= _SOFT_DEPTH:
            return min(branches, key=self.recursion_rank)  # the first scalar branch, else the first without $ref
        return branches[0]

    def kind(self, schema: dict) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            concrete = [k for k in kind if k != "null"]
            kind = concrete[0] if concrete else "null"
        if isinstance(kind, str) and kind:
            return kind
        if "properties" in schema or "required" in schema or "additionalProperties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema or "minItems" in schema:
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
            return "number"
        return "string"

    # -- containers ---------------------------------------------------------------------------------
    def member(self, schema: Any, key: str, depth: int) -> Any:
        self.budget.charge(len(key) + 4)
        return self.value(schema, depth + 1, key)

    def object(self, schema: dict, depth: int) -> dict:
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = schema.get("required") if isinstance(schema.get("required"), list) else []
        chosen = list(dict.fromkeys(k for k in required if isinstance(k, str)))
        minimum = count_of(schema.get("minProperties"), 0)
        maximum = count_of(schema.get("maxProperties"), math.inf)
        optional: list[str] = []
        if depth < _SOFT_DEPTH and not self.lean:
            taken = set(chosen)
            for key in properties:
                if key not in taken and len(taken) < maximum and self.rng.random() < 0.7:
                    optional.append(key)
                    taken.add(key)
            if not taken and properties and maximum >= 1:
                # All optional and none drawn: a model fills in something, and `{}` reads as a failed
                # extraction to frameworks that validate it (Pydantic models with defaults, say).
                optional.append(self.rng.choice(list(properties)))
        self.budget.charge(2)
        out = {key: self.member(properties.get(key, {}), key, depth) for key in chosen}
        for key in optional:
            value = self.optional(lambda key=key: self.member(properties[key], key, depth))
            if value is not _SKIP:
                out[key] = value
        for key in properties:  # minProperties: add the rest until satisfied
            if len(out) >= minimum:
                break
            if key not in out:
                out[key] = self.member(properties[key], key, depth)
        extra = schema.get("additionalProperties", True)
        index = 1
        while len(out) < minimum and extra is not False:
            key = f"{self.words[(index - 1) % len(self.words)]}_{index}"
            if key not in out:
                out[key] = self.member(extra if isinstance(extra, dict) else {}, key, depth)
            index += 1
        return out

    def array(self, schema: dict, depth: int, name: str) -> list:
        prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
        items = schema.get("items", {} if not prefix else False)
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", False)
        low = count_of(schema.get("minItems"), 0)
        high = count_of(schema.get("maxItems"), None)
        if items is False:
            high = min(high, len(prefix)) if high is not None else len(prefix)
        lean = depth >= _SOFT_DEPTH or self.lean
        high = max(high if high is not None else low + (0 if lean else 3), low)
        preferred_low = low if lean else max(low, 1)
        preferred_high = low if lean else max(preferred_low, min(high, low + 3))
        count = self.rng.randint(min(preferred_low, high), min(preferred_high, high))
        self.budget.charge(2)
        out: list = []
        seen: set = set()
        unique = bool(schema.get("uniqueItems"))
        pool = None
        if unique and not prefix and isinstance(items, dict) and isinstance(items.get("enum"), list):
            pool = list(items["enum"])  # distinct values without retries: draw the enum without replacement
            self.rng.shuffle(pool)
            count = min(count, len(pool))
        for index in range(count):
            item_schema = prefix[index] if index < len(prefix) else items

            def make(index: int = index, item_schema: Any = item_schema) -> Any:
                self.budget.charge(1)
                return self.item(item_schema, pool[index] if pool is not None else _SKIP, unique, seen, depth, name)

            value = make() if index < low else self.optional(make)
            if value is _SKIP:
                break
            if unique and _freeze(value) in seen and len(out) >= low:
                break
            out.append(value)
            if unique:
                seen.add(_freeze(value))
        if isinstance(schema.get("contains"), dict) and high >= 1:
            wanted = self.value(schema["contains"], depth + 1, name)
            if wanted not in out:
                out[len(out) - 1 if len(out) >= high else len(out):] = [wanted]
        return out

    def item(self, schema: Any, drawn: Any, unique: bool, seen: set, depth: int, name: str) -> Any:
        """One array item; with uniqueItems, up to 20 more draws for one not yet in the array."""
        if drawn is not _SKIP:
            return self.literal(drawn)
        for attempt in range(21):
            mark = self.budget.mark()
            value = self.value(schema, depth + 1, name)
            if not unique or _freeze(value) not in seen:
                return value
            if attempt >= 2 and isinstance(value, str) and _plain_string(schema):
                variant = f"{value} {len(seen) + 1}"  # more distinct strings than the words allow
                if count_of(schema.get("maxLength"), None) is None or len(variant) <= schema["maxLength"]:
                    return self.charged(variant, len(value))
            self.budget.restore(mark)
        return value

def _plain_string(schema: Any) -> bool:
    return isinstance(schema, dict) and not any(k in schema for k in ("pattern", "format", "enum", "const", "$ref", "anyOf", "oneOf", "allOf"))


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if key == "properties" and isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        elif key == "required" and isinstance(merged.get(key), list) and isinstance(value, list):
            merged[key] = list(dict.fromkeys([*merged[key], *value]))
        else:
            merged[key] = value
    return merged
