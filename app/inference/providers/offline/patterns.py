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


def _emit(tokens, rng: random.Random, out: list[str]) -> None:
    for op, arg in tokens:
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
            _emit(arg[-1], rng, out)
        elif op is c.BRANCH:
            _emit(rng.choice(arg[1]), rng, out)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            low, high, body = arg
            high = low + _MAX_UNBOUNDED if high is c.MAXREPEAT else min(high, low + _MAX_UNBOUNDED)
            for _ in range(rng.randint(low, max(low, high))):
                _emit(body, rng, out)
        elif op is c.AT:
            continue  # anchors: the generated string is the whole match anyway
        else:
            raise _GiveUp


def string_for_pattern(pattern: str, rng: random.Random) -> str | None:
    """A string that `re.search(pattern, s)` accepts, or None when the pattern is beyond this generator."""
    try:
        parsed = sre_parse.parse(pattern)
        for _ in range(8):
            out: list[str] = []
            _emit(parsed, rng, out)
            candidate = "".join(out)
            if re.search(pattern, candidate):
                return candidate
    except (_GiveUp, re.error, RecursionError, OverflowError):
        return None
    return None
