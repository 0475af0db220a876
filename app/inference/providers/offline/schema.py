"""A value that validates against a JSON schema: tool-call arguments and structured outputs.

The offline model's promise is that a client's parsing code runs against its output exactly as against
a real model's: arguments validate against the tool's `parameters`, `json_schema` replies against the
schema. Values are drawn from a seeded `random.Random`, so they repeat with the request, and strings
prefer the words of the prompt (`words`), so they read as if they referred to it.
"""
from __future__ import annotations

import math
import random
import re
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any, Sequence

from app.inference.providers.offline.patterns import string_for_pattern

_MAX_DEPTH = 6
_FILLER = ("alpha", "bravo", "delta", "echo", "sample", "value", "item", "note", "offline", "example")
_PROPER_HINTS = ("name", "city", "location", "country", "place", "person", "company", "destination", "origin")
_FORMAT_BY_NAME = (
    ("email", "email"), ("url", "uri"), ("uri", "uri"), ("link", "uri"), ("website", "uri"),
    ("uuid", "uuid"), ("timestamp", "date-time"), ("datetime", "date-time"), ("date", "date"),
)


def value_for_schema(schema: Any, rng: random.Random, *, words: Sequence[str] = (), root: Any = None) -> Any:
    """A JSON value valid against `schema` (draft 2020-12 / OpenAI's structured-output subset)."""
    return _Generator(rng, words, schema if root is None else root).value(schema, 0, "")


class _Generator:
    def __init__(self, rng: random.Random, words: Sequence[str], root: Any) -> None:
        self.rng = rng
        self.words = [w for w in words if w] or list(_FILLER)
        self.root = root

    # -- dispatch -----------------------------------------------------------------------------------
    def value(self, schema: Any, depth: int, name: str) -> Any:
        if schema is True or schema is None or schema == {}:
            return self.string({}, name)
        if schema is False or not isinstance(schema, dict):
            return None
        if "$ref" in schema:
            target = self.resolve(schema["$ref"])
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return self.value(_merge(target, rest) if rest else target, depth + 1, name)
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part["$ref"]) if isinstance(part, dict) and "$ref" in part else part
                merged = _merge(merged, part if isinstance(part, dict) else {})
            return self.value(merged, depth, name)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                branch = self.branch(schema[key], depth)
                rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                return self.value(_merge(rest, branch) if rest and isinstance(branch, dict) else branch, depth + 1, name)
        kind = self.kind(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth, name)
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return self.number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self.string(schema, name)

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        node = self.root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return {}
        return node

    def branch(self, branches: list, depth: int) -> Any:
        """The first branch, as the brief of the offline model says; deep in a recursive schema, the first
        branch that does not recurse, so generation ends."""
        if depth >= _MAX_DEPTH:
            for candidate in branches:
                if isinstance(candidate, dict) and "$ref" not in candidate and self.kind(candidate) in ("null", "string", "integer", "number", "boolean"):
                    return candidate
        return branches[0]

    @staticmethod
    def kind(schema: dict) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            concrete = [k for k in kind if k != "null"]
            kind = concrete[0] if concrete else "null"
        if kind:
            return kind
        if "properties" in schema or "required" in schema or "additionalProperties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema or "minItems" in schema:
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
            return "number"
        return "string"

    # -- containers ---------------------------------------------------------------------------------
    def object(self, schema: dict, depth: int) -> dict:
        properties = schema.get("properties") or {}
        required = [k for k in schema.get("required") or () if isinstance(k, str)]
        chosen = list(dict.fromkeys(required))
        maximum = schema.get("maxProperties", math.inf)
        deep = depth >= _MAX_DEPTH
        for key in properties:
            if key not in chosen and len(chosen) < maximum and not deep and self.rng.random() < 0.7:
                chosen.append(key)
        for key in properties:  # minProperties: add the rest until satisfied
            if len(chosen) >= schema.get("minProperties", 0):
                break
            if key not in chosen:
                chosen.append(key)
        out = {key: self.value(properties.get(key, {}), depth + 1, key) for key in chosen}
        extra_schema = schema.get("additionalProperties", True)
        index = 1
        while len(out) < schema.get("minProperties", 0) and extra_schema is not False:
            key = f"{self.words[(index - 1) % len(self.words)]}_{index}"
            out.setdefault(key, self.value(extra_schema if isinstance(extra_schema, dict) else {}, depth + 1, key))
            index += 1
        return out

    def array(self, schema: dict, depth: int, name: str) -> list:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {} if not prefix else False)
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", False)
        low = max(int(schema.get("minItems", 0)), 0)
        high = schema.get("maxItems")
        if items is False:
            high = min(high, len(prefix)) if high is not None else len(prefix)
        deep = depth >= _MAX_DEPTH
        high = max(int(high) if high is not None else low + (0 if deep else 3), low)
        preferred_low = low if deep else max(low, 1)
        preferred_high = low if deep else max(preferred_low, min(high, low + 3))
        count = self.rng.randint(min(preferred_low, high), min(preferred_high, high))
        out: list = []
        unique = bool(schema.get("uniqueItems"))
        pool = None
        if unique and not prefix and isinstance(items, dict) and isinstance(items.get("enum"), list):
            pool = list(items["enum"])  # distinct values without retries: draw the enum without replacement
            self.rng.shuffle(pool)
            count = min(count, len(pool))
        for index in range(count):
            item_schema = prefix[index] if index < len(prefix) else items
            value = pool[index] if pool is not None else self.value(item_schema, depth + 1, name)
            for _ in range(20):
                if not unique or value not in out:
                    break
                value = self.value(item_schema, depth + 1, name)
            if unique and value in out:
                if len(out) >= low:
                    break
            out.append(value)
        if isinstance(schema.get("contains"), dict) and high >= 1:
            wanted = self.value(schema["contains"], depth + 1, name)
            if wanted not in out:
                out[len(out) - 1 if len(out) >= high else len(out):] = [wanted]
        return out

    # -- scalars ------------------------------------------------------------------------------------
    def _bounds(self, schema: dict, step: float) -> tuple[float, float]:
        low, high = schema.get("minimum"), schema.get("maximum")
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if ex_low is True and low is not None:  # draft 4 boolean form
            low += step
        elif isinstance(ex_low, (int, float)) and not isinstance(ex_low, bool):
            low = max(low, ex_low + step) if low is not None else ex_low + step
        if ex_high is True and high is not None:
            high -= step
        elif isinstance(ex_high, (int, float)) and not isinstance(ex_high, bool):
            high = min(high, ex_high - step) if high is not None else ex_high - step
        if low is None and high is None:
            low, high = 1, 100
        elif low is None:
            low = high - 100 if high <= 0 else max(high - 100, 0)
        elif high is None:
            high = low + 100
        return low, high

    def integer(self, schema: dict) -> int:
        low, high = self._bounds(schema, 1)
        low, high = math.ceil(low), math.floor(high)
        multiple = schema.get("multipleOf")
        if isinstance(multiple, (int, float)) and multiple > 0 and float(multiple).is_integer():
            m = int(multiple)
            first, last = math.ceil(low / m), math.floor(high / m)
            if first <= last:
                return self.rng.randint(first, last) * m
        return self.rng.randint(low, max(low, high))

    def number(self, schema: dict) -> float | int:
        low, high = self._bounds(schema, 0.01)
        multiple = schema.get("multipleOf")
        if isinstance(multiple, (int, float)) and multiple > 0:
            first, last = math.ceil(low / multiple), math.floor(high / multiple)
            for _ in range(8 if first <= last else 0):
                value = self.rng.randint(first, last) * multiple
                value = int(value) if float(multiple).is_integer() else round(value, 10)
                if float(value / multiple).is_integer() and low <= value <= high:  # as validators check it, in floats
                    return value
        value = round(self.rng.uniform(low, high), 2)
        return min(max(value, low), high)

    def string(self, schema: dict, name: str) -> str:
        fmt = schema.get("format")
        pattern = schema.get("pattern")
        if not fmt and not pattern:
            lowered = name.lower()
            fmt = next((f for hint, f in _FORMAT_BY_NAME if hint in lowered), None)
        low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
        if pattern:
            for candidate in (string_for_pattern(pattern, self.rng), *self.words):
                if candidate is not None and re.search(pattern, candidate) and _fits(candidate, low, high):
                    return candidate
            generated = string_for_pattern(pattern, self.rng)
            if generated is not None:
                return generated
        text = self.formatted(fmt) if fmt else None
        if text is None or not _fits(text, low, high):
            text = self.phrase(name)
        filler = " ".join(self.words)
        while len(text) < low:
            text = f"{text} {filler}" if text else filler
        if high is not None and len(text) > int(high):
            text = text[: int(high)]
        return text

    def phrase(self, name: str) -> str:
        lowered = name.lower()
        if any(hint in lowered for hint in _PROPER_HINTS):
            proper = [w for w in self.words if w[:1].isupper()] or self.words
            text = self.rng.choice(proper)  # a city, a person, a company: the prompt's capitalised words
            return text[:1].upper() + text[1:]
        count = 1 if any(h in lowered for h in ("id", "code", "key")) else self.rng.randint(1, 3)
        start = self.rng.randrange(len(self.words))
        return " ".join(self.words[(start + i) % len(self.words)] for i in range(min(count, len(self.words))))

    def formatted(self, fmt: str) -> str | None:
        rng = self.rng
        moment = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(0, 2 * 365 * 86400))
        word = re.sub(r"[^a-z0-9]", "", (rng.choice(self.words) or "user").lower()) or "user"
        if fmt == "date-time":
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if fmt == "date":
            return date(moment.year, moment.month, moment.day).isoformat()
        if fmt == "time":
            return moment.strftime("%H:%M:%SZ")
        if fmt == "duration":
            return f"P{rng.randint(1, 30)}D"
        if fmt in ("email", "idn-email"):
            return f"{word}@example.com"
        if fmt in ("uri", "iri", "url"):
            return f"https://example.com/{word}"
        if fmt in ("uri-reference", "iri-reference"):
            return f"/{word}"
        if fmt == "uuid":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if fmt in ("hostname", "idn-hostname"):
            return f"{word}.example.com"
        if fmt == "ipv4":
            return f"192.0.2.{rng.randint(1, 254)}"
        if fmt == "ipv6":
            return f"2001:db8::{rng.randint(1, 0xFFFF):x}"
        return None


def _fits(text: str, low: int, high: Any) -> bool:
    return len(text) >= low and (high is None or len(text) <= int(high))


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if key == "properties" and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        elif key == "required" and isinstance(merged.get(key), list):
            merged[key] = list(dict.fromkeys([*merged[key], *value]))
        else:
            merged[key] = value
    return merged
