"""The catalogue file (app/services/model_catalogue.json) is well formed, and scripts/refresh_models.py,
which refreshes it deliberately from the installed SDKs, runs."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from fnmatch import fnmatchcase

import pytest

from app.services.model_catalogue import CATALOGUE_FILE, DEFAULTS, KINDS, MODALITIES, OWNERS, parse
from tests.conftest import ROOT

DATA = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
# Entries whose first matching family gives another owner or kind, on purpose.
UNLIKE_THEIR_FAMILY = {"text-embedding-004"}  # Google's, though OpenAI's text-embedding-* family matches it


def _first_family(model_id: str) -> dict | None:
    return next((f for f in DATA["families"] if fnmatchcase(model_id, f["pattern"])), None)


def _check_defaults(entry: dict) -> None:
    assert entry["owned_by"] in OWNERS, entry
    assert entry["kind"] in KINDS, entry
    assert type(entry["created"]) is int and 1_577_836_800 <= entry["created"] <= 1_893_456_000, entry  # 2020..2030
    for name in ("context_window", "max_output_tokens"):
        assert entry[name] is None or (type(entry[name]) is int and entry[name] > 0), entry
    for name in ("input_modalities", "output_modalities"):
        assert isinstance(entry[name], list) and set(entry[name]) <= set(MODALITIES), entry
        assert len(entry[name]) == len(set(entry[name])), entry
    assert entry["input_modalities"], entry


def test_file_shape_and_version():
    assert set(DATA) == {"version", "families", "models"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d(\.\d+)?", DATA["version"])
    assert parse(CATALOGUE_FILE.read_text(encoding="utf-8")).version == DATA["version"]


def test_one_entry_per_line():
    """Readable diffs: every family and model on a line of its own."""
    lines = CATALOGUE_FILE.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 7 + len(DATA["families"]) + len(DATA["models"])
    for entry in DATA["families"] + DATA["models"]:
        key = entry.get("pattern") or entry["id"]
        assert sum(1 for line in lines if json.dumps(key) in line.split(",")[0]) == 1, key


def test_models_are_unique_and_complete():
    ids = [m["id"] for m in DATA["models"]]
    assert len(ids) == len(set(ids))
    for model in DATA["models"]:
        assert isinstance(model["id"], str) and re.fullmatch(r"[a-z0-9][a-z0-9._-]*", model["id"]), model
        _check_defaults(model)
        allowed = {"id", *DEFAULTS} | ({"display_name"} if model["owned_by"] == "anthropic" else set())
        assert set(model) == allowed, model
        if model["owned_by"] == "anthropic":
            assert re.fullmatch(r"Claude [A-Z0-9].*", model["display_name"]), model
        if model["kind"] in ("chat", "completion"):
            assert model["context_window"] and model["max_output_tokens"] and "text" in model["output_modalities"], model


def test_families_have_every_default():
    patterns = [f["pattern"] for f in DATA["families"]]
    assert len(patterns) == len(set(patterns))
    for family in DATA["families"]:
        assert set(family) == {"pattern", *DEFAULTS}, family
        _check_defaults(family)
    for required in ("gpt-image-*", "gpt-*-transcribe*", "gpt-*-tts*", "gpt-realtime*", "gpt-*-realtime*", "gpt-*", "chatgpt-*",
                     "o[0-9]*", "codex-*", "computer-use-*", "text-embedding-*", "text-moderation-*", "omni-moderation-*",
                     "dall-e-*", "whisper-*", "tts-*", "sora-*", "davinci-*", "babbage-*", "claude-*", "gemini-embedding-*",
                     "gemini-*", "imagen-*", "veo-*"):
        assert required in patterns, required


def test_specific_families_come_before_general_ones():
    """A pattern that another, earlier pattern already covers would never match: each must be reachable."""
    for family in DATA["families"]:
        example = family["pattern"].replace("[0-9]", "7").replace("*", "x")
        assert _first_family(example) is family, (family["pattern"], _first_family(example))


def test_every_model_matches_a_family_like_it():
    for model in DATA["models"]:
        family = _first_family(model["id"])
        assert family is not None, model["id"]
        if model["id"] not in UNLIKE_THEIR_FAMILY:
            assert (family["owned_by"], family["kind"]) == (model["owned_by"], model["kind"]), (model["id"], family["pattern"])


def test_o_family_is_not_every_o():
    assert _first_family("omni-moderation-9")["kind"] == "moderation"
    assert _first_family("ollama-3") is None and _first_family("o4-mini-2030-01-01")["pattern"] == "o[0-9]*"


def _refresh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/refresh_models.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_refresh_script_reports():
    before = CATALOGUE_FILE.read_bytes()
    done = _refresh()
    assert done.returncode == 0, done.stderr
    assert f"version {DATA['version']}, {len(DATA['models'])} models" in done.stdout
    assert "installed SDKs: openai " in done.stdout
    assert "ids the SDKs (or --add) name that the file lacks:" in done.stdout
    assert "no longer list" in done.stdout
    assert CATALOGUE_FILE.read_bytes() == before  # a report writes nothing


@pytest.mark.parametrize("dropped", ["gpt-4o-mini-tts"])
def test_refresh_script_writes_new_ids_with_family_defaults(tmp_path, dropped):
    """On a copy: an id the installed SDK lists but the copy lacks, and an id passed with --add, are added
    with their family's defaults (created from a date in the id), the version bumped, nothing else moved."""
    original = CATALOGUE_FILE.read_text(encoding="utf-8")
    copy = tmp_path / "catalogue.json"
    copy.write_text("".join(line for line in original.splitlines(keepends=True) if f'"id": "{dropped}"' not in line), encoding="utf-8")
    before = copy.read_text(encoding="utf-8").splitlines()

    done = _refresh("--file", str(copy), "--write", "--add", "gpt-fake-9-2031-02-03")
    assert done.returncode == 0, done.stderr
    assert dropped in done.stdout and "gpt-fake-9-2031-02-03" in done.stdout
    after_text = copy.read_text(encoding="utf-8")
    written = parse(after_text)
    assert written.version != DATA["version"] and re.fullmatch(r"\d{4}-\d\d-\d\d(\.\d+)?", written.version)
    fake = written.models["gpt-fake-9-2031-02-03"]
    family = _first_family("gpt-fake-9-2031-02-03")
    assert fake["created"] == 1_927_843_200  # 2031-02-03T00:00:00Z
    assert {k: fake[k] for k in DEFAULTS if k != "created"} == {k: family[k] for k in DEFAULTS if k != "created"}
    assert written.models[dropped]["kind"] == "speech" and written.models[dropped]["owned_by"] == "openai"
    after = after_text.splitlines()
    assert len(after) == len(before) + 2
    assert [line for line in after if "gpt-fake-9" not in line and f'"{dropped}"' not in line and '"version"' not in line] == \
           [line for line in before if '"version"' not in line]  # every other line as it was

    again = _refresh("--file", str(copy))
    assert again.returncode == 0 and "name that the file lacks: 0" in again.stdout
