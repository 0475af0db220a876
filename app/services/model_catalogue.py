"""The model catalogue as data we own: model_catalogue.json beside this module, versioned in the repo.

It used to be built from the installed SDKs' type literals, so every SDK release silently changed which
ids the server answered (anthropic 2.17 dropped `claude-sonnet-4-5`, which clients still send). Now the
file is the list, refreshed deliberately by scripts/refresh_models.py, and its `families` (fnmatch
patterns, most specific first) give the defaults an id the file does not list gets when it looks like a
known family (`claude-opus-9-9`, `gpt-9o`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path

CATALOGUE_FILE = Path(__file__).with_name("model_catalogue.json")
OWNERS = ("openai", "anthropic", "google")
KINDS = ("chat", "completion", "embedding", "moderation", "image", "transcription", "speech", "realtime", "video")
MODALITIES = ("text", "image", "audio", "video")
# What a family gives an id it matches, and the order of a model entry's fields in the file.
DEFAULTS = ("owned_by", "kind", "created", "context_window", "max_output_tokens", "input_modalities", "output_modalities")
MODEL_FIELDS = ("id", *DEFAULTS, "display_name")
# Only plain ids are answered by family: "gpt-4o:free" or "claude-x/../y" stay unknown, as at OpenAI.
_PLAIN_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,95}")


@dataclass(frozen=True)
class Catalogue:
    version: str
    models: dict[str, dict]  # id -> entry, in the file's order
    families: tuple[dict, ...]

    def family(self, model_id: str) -> dict | None:
        return next((f for f in self.families if fnmatchcase(model_id, f["pattern"])), None)

    def synthesize(self, model_id: str) -> dict | None:
        """The entry an unlisted id gets from its family's defaults, or None when no family claims it."""
        family = self.family(model_id) if _PLAIN_ID.fullmatch(model_id) else None
        if family is None:
            return None
        entry = {"id": model_id, **{k: family[k] for k in DEFAULTS}}
        if entry["owned_by"] == "anthropic":
            entry["display_name"] = display_name(model_id)
        return entry

    def of_kind(self, kind: str) -> tuple[str, ...]:
        return tuple(m["id"] for m in self.models.values() if m["kind"] == kind)


def _check(entry: dict, where: str, fields: tuple[str, ...]) -> None:
    missing = [f for f in fields if f not in entry]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    if entry["owned_by"] not in OWNERS or entry["kind"] not in KINDS:
        raise ValueError(f"{where}: owned_by must be one of {OWNERS} and kind one of {KINDS}")
    if type(entry["created"]) is not int:
        raise ValueError(f"{where}: created must be an int (unix seconds)")
    for name in ("context_window", "max_output_tokens"):
        if entry[name] is not None and type(entry[name]) is not int:
            raise ValueError(f"{where}: {name} must be an int or null")
    for name in ("input_modalities", "output_modalities"):
        if not isinstance(entry[name], list) or not set(entry[name]) <= set(MODALITIES):
            raise ValueError(f"{where}: {name} must be a list of {MODALITIES}")


def parse(text: str) -> Catalogue:
    """The file's catalogue, checked: a malformed file fails at start-up, not on some request."""
    data = json.loads(text)
    families = tuple(data["families"])
    for family in families:
        _check(family, f"family {family.get('pattern')!r}", ("pattern", *DEFAULTS))
    models: dict[str, dict] = {}
    for entry in data["models"]:
        _check(entry, f"model {entry.get('id')!r}", ("id", *DEFAULTS))
        if entry["id"] in models:
            raise ValueError(f"model {entry['id']!r} is listed twice")
        models[entry["id"]] = entry
    return Catalogue(str(data["version"]), models, families)


@cache
def load(path: Path = CATALOGUE_FILE) -> Catalogue:
    return parse(path.read_text(encoding="utf-8"))


def dump(version: str, families: list[dict], models: list[dict]) -> str:
    """The file's text: one family or model per line, fields in a fixed order, so diffs stay readable."""
    def line(entry: dict, order: tuple[str, ...]) -> str:
        ordered = {k: entry[k] for k in order if k in entry}
        return "    " + json.dumps({**ordered, **entry}, ensure_ascii=False)

    families_text = ",\n".join(line(f, ("pattern", *DEFAULTS)) for f in families)
    models_text = ",\n".join(line(m, MODEL_FIELDS) for m in models)
    return f'{{\n  "version": {json.dumps(version)},\n  "families": [\n{families_text}\n  ],\n  "models": [\n{models_text}\n  ]\n}}\n'


def _midnight(year: int, month: int, day: int) -> int | None:
    try:
        return int(datetime(year, month, day, tzinfo=timezone.utc).timestamp())
    except ValueError:
        return None


def date_in_id(model_id: str) -> int | None:
    """Midnight UTC of a date the id carries: `-2024-08-06`, `-20250929`, or OpenAI's 2023 `-0613`."""
    if match := re.search(r"-(20\d\d)-(\d\d)-(\d\d)(?=-|$)", model_id):
        return _midnight(int(match[1]), int(match[2]), int(match[3]))
    if match := re.search(r"-(20\d\d)(\d\d)(\d\d)(?=-|$)", model_id):
        return _midnight(int(match[1]), int(match[2]), int(match[3]))
    if match := re.search(r"-(\d\d)(\d\d)(?=-|$)", model_id):
        return _midnight(2023, int(match[1]), int(match[2]))
    return None


def display_name(model_id: str) -> str:
    """Anthropic's style of name: claude-sonnet-4-5-20250929 -> "Claude Sonnet 4.5", claude-3-5-haiku-latest
    -> "Claude Haiku 3.5", claude-sonnet-4-0 -> "Claude Sonnet 4", claude-2.1 -> "Claude 2.1"."""
    base = re.sub(r"-(\d{8}|latest)$", "", model_id).removeprefix("claude-")
    words = base.split("-")
    numbers = [w for w in words if re.fullmatch(r"\d+(\.\d+)?", w)]
    names = [w.capitalize() for w in words if w not in numbers]
    if len(numbers) == 2 and numbers[1] == "0":
        numbers = numbers[:1]  # claude-opus-4-0 is "Claude Opus 4" (but claude-2.0 stays "Claude 2.0")
    version = ".".join(numbers)
    return " ".join(["Claude", *names, *([version] if version else [])])
