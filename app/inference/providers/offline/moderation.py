"""Moderations from a small built-in lexicon: predictable flags for tests of content filters.

A text is scored per category by the lexicon entries it contains (each hit w raises the score to
1 - Π(1 - w)), on top of a tiny deterministic base score; a category is flagged above 0.5. Images are
counted (the categories that apply to images list "image") but not looked at.
"""
from __future__ import annotations

import hashlib
import re

from app.core.errors import invalid_request

CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence", "violence/graphic",
)
IMAGE_CATEGORIES = frozenset({"self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "violence", "violence/graphic"})
THRESHOLD = 0.5

_LEXICON: dict[str, tuple[tuple[str, float], ...]] = {
    "violence": (
        (r"kill(s|ed|ing)?", 0.85), (r"murder\w*", 0.9), (r"stab\w*", 0.8), (r"shoot(s|ing)?|shot", 0.75), (r"attack\w*", 0.55),
        (r"beat (him|her|them|you) up", 0.8), (r"punch\w*", 0.5), (r"bomb\w*", 0.6), (r"strangle\w*", 0.85), (r"hurt (him|her|them|you)", 0.7),
    ),
    "violence/graphic": ((r"blood(y)?", 0.45), (r"gore|gory", 0.8), (r"dismember\w*|mutilat\w*|disembowel\w*", 0.9), (r"guts spill\w*", 0.8)),
    "harassment": (
        (r"idiot\w*", 0.7), (r"stupid", 0.55), (r"loser", 0.6), (r"worthless", 0.65), (r"shut up", 0.5), (r"moron\w*", 0.7), (r"pathetic", 0.55),
    ),
    "hate": ((r"subhuman", 0.85), (r"vermin", 0.6), (r"inferior (race|people)", 0.9), (r"go back to your country", 0.8)),
    "hate/threatening": ((r"exterminate (them|all)", 0.85), (r"wipe (them|their kind) out", 0.8)),
    "self-harm": ((r"suicide|suicidal", 0.8), (r"kill myself", 0.9), (r"self[- ]harm", 0.8), (r"cut myself", 0.85), (r"end my life", 0.9)),
    "self-harm/intent": ((r"(want|going|plan) to (kill myself|die|end my life)", 0.9), (r"kill myself", 0.7), (r"end my life", 0.7)),
    "sexual": ((r"porn\w*", 0.85), (r"sex(ual)?", 0.55), (r"nude(s)?|naked", 0.6), (r"explicit", 0.4), (r"erotic\w*", 0.75)),
    "illicit": (
        (r"cocaine|heroin|meth(amphetamine)?|fentanyl", 0.75), (r"steal\w*|shoplift\w*", 0.6), (r"hack into", 0.75), (r"counterfeit\w*", 0.75),
        (r"launder\w*", 0.7), (r"buy drugs|sell drugs", 0.8),
    ),
    "illicit/violent": ((r"(make|build) a (bomb|pipe bomb|weapon)", 0.9), (r"untraceable gun", 0.85)),
}
_COMPILED = {category: tuple((re.compile(rf"(?<!\w)(?:{pattern})(?!\w)", re.IGNORECASE), w) for pattern, w in entries) for category, entries in _LEXICON.items()}
_YOU = re.compile(r"(?<!\w)(you|your|u)(?!\w)", re.IGNORECASE)
_HOW_TO = re.compile(r"(?<!\w)(how (to|do i|can i)|ways to|steps to|method to)(?!\w)", re.IGNORECASE)
_MINORS = re.compile(r"(?<!\w)(child(ren)?|kids?|minors?|underage|teen(ager)?s?)(?!\w)", re.IGNORECASE)


def _base(text: str, category: str) -> float:
    digest = hashlib.sha256(f"{category}\x00{text}".encode()).digest()
    return 1e-6 + int.from_bytes(digest[:4], "big") / 2**32 * 1e-4


def _combine(*weights: float) -> float:
    remaining = 1.0
    for weight in weights:
        remaining *= 1.0 - weight
    return 1.0 - remaining


def scores(text: str) -> dict[str, float]:
    out = {}
    for category in CATEGORIES:
        hits = [w for pattern, w in _COMPILED.get(category, ()) if pattern.search(text)]
        out[category] = _combine(_base(text, category), *hits)
    if out["violence"] > THRESHOLD and _YOU.search(text):
        out["harassment/threatening"] = _combine(out["harassment/threatening"], 0.8)
        out["harassment"] = _combine(out["harassment"], 0.4)
    if out["self-harm"] > THRESHOLD and _HOW_TO.search(text):
        out["self-harm/instructions"] = _combine(out["self-harm/instructions"], 0.85)
    if out["sexual"] > THRESHOLD and _MINORS.search(text):
        out["sexual/minors"] = _combine(out["sexual/minors"], 0.95)
    if out["illicit/violent"] > THRESHOLD:
        out["illicit"] = _combine(out["illicit"], 0.7)
    return {category: round(score, 8) for category, score in out.items()}


def _result(text: str, images: int) -> dict:
    category_scores = scores(text)
    applied = {}
    for category in CATEGORIES:
        kinds = (["text"] if text else []) + (["image"] if images and category in IMAGE_CATEGORIES else [])
        applied[category] = kinds
    categories = {category: score > THRESHOLD for category, score in category_scores.items()}
    return {"flagged": any(categories.values()), "categories": categories, "category_scores": category_scores, "category_applied_input_types": applied}


MAX_INPUTS = 2048  # texts per request, as embeddings take


def _inputs(value) -> list[tuple[str, int]]:
    """(text, image count) per result: each string is one input; a list of parts is one input."""
    if isinstance(value, str):
        return [(value, 0)]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        if len(value) > MAX_INPUTS:  # each costs ~50 µs of regular expressions: 10 MB of "a"s would be minutes
            raise invalid_request(f"Invalid 'input': maximum array size is {MAX_INPUTS}, but got {len(value)}.", param="input")
        return [(v, 0) for v in value]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        texts, images = [], 0
        for index, part in enumerate(value):
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") == "image_url":
                images += 1
            else:
                raise invalid_request(f"Invalid value for 'input[{index}].type': expected 'text' or 'image_url'.", param=f"input[{index}].type")
        return [("\n".join(texts), images)]
    raise invalid_request("Invalid 'input': expected a string, an array of strings or an array of content parts.", param="input")


def create(params: dict, moderation_id: str) -> dict:
    model = str(params.get("model") or "omni-moderation-latest")
    return {"id": moderation_id, "model": model, "results": [_result(text, images) for text, images in _inputs(params.get("input"))]}
