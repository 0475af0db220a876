"""Scalar values for JSON schemas: strings (formats, patterns, lengths), integers and numbers (ranges,
multipleOf), drawn from the generator's seeded `rng` and the prompt's `words` (schema.py), each charged
to its `budget` so that a hostile `minLength` cannot build an unbounded string.
"""
from __future__ import annotations

import math
import re
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any

from app.inference.providers.offline.patterns import is_risky, string_for_pattern
from app.inference.providers.offline.schema_limits import MAX_PATTERN_LENGTH, MAX_STRING_LENGTH, Overflow

MAX_WORD = 64  # a prompt word longer than this is cut: strings are built from words

_PROPER_HINTS = ("name", "city", "location", "country", "place", "person", "company", "destination", "origin")
_FORMAT_BY_NAME = (
    ("email", "email"), ("url", "uri"), ("uri", "uri"), ("link", "uri"), ("website", "uri"),
    ("uuid", "uuid"), ("timestamp", "date-time"), ("datetime", "date-time"), ("date", "date"),
)


def count_of(value: Any, default: Any) -> Any:
    """A count keyword (minItems, maxLength, ...) as an int, or `default` when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return default
    return int(value)


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except (re.error, RecursionError, OverflowError):
        return False


def _fits(text: str, low: int, high: Any) -> bool:
    return len(text) >= low and (high is None or len(text) <= int(high))


class Scalars:
    """Mixed into the generator, which provides `rng`, `words`, `budget` and `lean`."""

    def _bounds(self, schema: dict, step: float) -> tuple[float, float]:
        low, high = _number(schema.get("minimum")), _number(schema.get("maximum"))
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if ex_low is True and low is not None:  # draft 4 boolean form
            low += step
        elif _number(ex_low) is not None:
            low = max(low, ex_low + step) if low is not None else ex_low + step
        if ex_high is True and high is not None:
            high -= step
        elif _number(ex_high) is not None:
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
        multiple = _number(schema.get("multipleOf"))
        if multiple is not None and multiple > 0 and float(multiple).is_integer():
            m = int(multiple)
            first, last = -(-low // m), high // m
            if first <= last:
                return self.rng.randint(first, last) * m
        return self.rng.randint(low, max(low, high))

    def number(self, schema: dict) -> float | int:
        low, high = self._bounds(schema, 0.01)
        multiple = _number(schema.get("multipleOf"))
        if multiple is not None and multiple > 0:
            try:
                first, last = math.ceil(low / multiple), math.floor(high / multiple)
            except OverflowError:  # a multipleOf so small that no integer counts the steps: any number then
                first, last = 1, 0
            for _ in range(8 if first <= last else 0):
                value = self.rng.randint(first, last) * multiple
                value = int(value) if float(multiple).is_integer() else round(value, 10)
                if math.isfinite(value) and float(value / multiple).is_integer() and low <= value <= high:  # as validators check it, in floats
                    return value
            if low <= 0 <= high:
                return 0  # a multiple of anything, where the steps are too small to count
        value = round(self.rng.uniform(low, high), 2)
        return min(max(value, low), high) if math.isfinite(value) else low

    def string(self, schema: dict, name: str) -> str:
        fmt = schema.get("format") if isinstance(schema.get("format"), str) else None
        pattern = schema.get("pattern") if isinstance(schema.get("pattern"), str) and len(schema["pattern"]) <= MAX_PATTERN_LENGTH else None
        if not fmt and not pattern:
            lowered = name.lower()
            fmt = next((f for hint, f in _FORMAT_BY_NAME if hint in lowered), None)
        low, high = count_of(schema.get("minLength"), 0), count_of(schema.get("maxLength"), None)
        if low > MAX_STRING_LENGTH:
            raise Overflow("size")
        self.budget.charge(low + 2)  # before a long string is built
        if pattern:
            generated = string_for_pattern(pattern, self.rng, max_length=MAX_STRING_LENGTH)
            words = () if is_risky(pattern) else [w for w in self.words if len(w) <= MAX_WORD]
            for candidate in (generated, *words):
                if candidate is not None and _fits(candidate, low, high) and _search(pattern, candidate):
                    return self.charged(candidate, low)
            if generated is not None:
                return self.charged(generated, low)
        text = self.formatted(fmt) if fmt else None
        if text is None or not _fits(text, low, high):
            text = self.phrase(name)
        filler = " ".join(self.words)
        if len(text) < low:
            if not text:
                text = filler
            missing = low - len(text)
            if missing > 0:
                text += f" {filler}" * -(-missing // (len(filler) + 1))
        if high is not None and len(text) > high:
            text = text[:high]
        return self.charged(text, low)

    def charged(self, text: str, already: int) -> str:
        self.budget.charge(max(len(text) - already, 0))
        return text

    def phrase(self, name: str) -> str:
        lowered = name.lower()
        if self.lean:
            return self.rng.choice(self.words)
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
