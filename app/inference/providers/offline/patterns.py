"""Strings for the simple regular expressions JSON schemas use (`^[A-Z]{3}-\\d{4}$`, `^(red|blue)$`).

A tiny generator over Python's own regex parser (`re._parser`): literals, classes, `\\d \\w \\s`, `.`,
groups, alternation and bounded repeats. Anything fancier (look-arounds, back-references) gives up and
returns None, and the caller falls back to other candidates.
"""
from __future__ import annotations

import random
import re
import string

try:  # Python 3.11+
    import re._parser as sre_parse  # type: ignore[import-not-found]
    from re import _constants as c  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older Pythons
    import sre_parse  # type: ignore[no-redef]
    import sre_constants as c  # type: ignore[no-redef]

_CATEGORY_CHARS = {
    c.CATEGORY_DIGIT: string.digits,
    c.CATEGORY_WORD: string.ascii_letters + string.digits + "_",
    c.CATEGORY_SPACE: " ",
    c.CATEGORY_NOT_DIGIT: string.ascii_letters,
    c.CATEGORY_NOT_WORD: "-.: ",
    c.CATEGORY_NOT_SPACE: string.ascii_letters + string.digits,
}
_ANY = string.ascii_letters + string.digits
_MAX_UNBOUNDED = 4


class _GiveUp(Exception):
    pass


def _class_chars(items) -> str:
    chars: list[str] = []
    negate = False
    for op, arg in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            chars.append(chr(arg))
        elif op is c.RANGE:
            lo, hi = arg
            chars.extend(chr(x) for x in range(lo, min(hi, lo + 200) + 1))
        elif op is c.CATEGORY:
            chars.extend(_CATEGORY_CHARS.get(arg, ""))
        else:
            raise _GiveUp
    if negate:
        excluded = set(chars)
        chars = [ch for ch in _ANY if ch not in excluded]
    if not chars:
        raise _GiveUp
    return "".join(chars)


class _Limit:
    """Characters and steps one generated string may take: `(a{1000}){1000}` must not build a million."""

    def __init__(self, max_length: int) -> None:
        self.length, self.steps = max_length, 4 * max_length + 1000

    def step(self, out: list[str]) -> None:
        self.steps -= 1
        if self.steps < 0 or len(out) > self.length:
            raise _GiveUp


def _emit(tokens, rng: random.Random, out: list[str], limit: _Limit) -> None:
    for op, arg in tokens:
        limit.step(out)
        if op is c.LITERAL:
            out.append(chr(arg))
        elif op is c.NOT_LITERAL:
            out.append(rng.choice([ch for ch in _ANY if ord(ch) != arg]))
        elif op is c.ANY:
            out.append(rng.choice(_ANY))
        elif op is c.IN:
            out.append(rng.choice(_class_chars(arg)))
        elif op is c.CATEGORY:
            out.append(rng.choice(_CATEGORY_CHARS.get(arg) or _ANY))
        elif op is c.SUBPATTERN:
            _emit(arg[-1], rng, out, limit)
        elif op is c.BRANCH:
            _emit(rng.choice(arg[1]), rng, out, limit)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            low, high, body = arg
            high = low + _MAX_UNBOUNDED if high is c.MAXREPEAT else min(high, low + _MAX_UNBOUNDED)
            for _ in range(rng.randint(low, max(low, high))):
                limit.step(out)
                _emit(body, rng, out, limit)
        elif op is c.AT:
            continue  # anchors: the generated string is the whole match anyway
        else:
            raise _GiveUp


def is_risky(pattern: str) -> bool:
    """Whether matching `pattern` can backtrack exponentially (a repeat inside a repeat, or alternatives
    inside one, as in `(a+)+$` or `(a|ab)*c`): such a pattern is not tried against arbitrary words."""
    try:
        return _nested_repeat(sre_parse.parse(pattern), False)
    except (re.error, RecursionError, OverflowError):
        return True


def _nested_repeat(tokens, inside: bool) -> bool:
    for op, arg in tokens:
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            low, high, body = arg
            many = high is c.MAXREPEAT or high > 1
            if (inside and many) or _nested_repeat(body, inside or many):
                return True
        elif op is c.SUBPATTERN:
            if _nested_repeat(arg[-1], inside):
                return True
        elif op is c.BRANCH:
            if inside or any(_nested_repeat(branch, inside) for branch in arg[1]):
                return True
        elif op in (c.ASSERT, c.ASSERT_NOT):
            if _nested_repeat(arg[1], inside):
                return True
    return False


def string_for_pattern(pattern: str, rng: random.Random, max_length: int = 10_000) -> str | None:
    """A string that `re.search(pattern, s)` accepts (at most `max_length` characters), or None when the
    pattern is beyond this generator."""
    try:
        parsed = sre_parse.parse(pattern)
        for _ in range(8):
            out: list[str] = []
            _emit(parsed, rng, out, _Limit(max_length))
            candidate = "".join(out)
            if re.search(pattern, candidate):
                return candidate
    except (_GiveUp, re.error, RecursionError, OverflowError):
        return None
    return None
