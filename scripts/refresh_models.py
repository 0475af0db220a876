"""Compare the model catalogue (app/services/model_catalogue.json) with the installed SDKs' model literals.

Run deliberately, never at run time: the file is the list the server answers, and an SDK upgrade should
change it only through a reviewed diff.

    .venv/bin/python scripts/refresh_models.py            # report: new ids, and ids the SDKs dropped
    .venv/bin/python scripts/refresh_models.py --write    # add the new ids (family defaults), bump version
    .venv/bin/python scripts/refresh_models.py --add gpt-9 --write   # add an id no SDK lists yet

Ids the SDKs no longer list stay in the file: clients still send them.
"""
from __future__ import annotations

import argparse
import json
import sys
import typing
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.services.model_catalogue import CATALOGUE_FILE, DEFAULTS, KINDS, OWNERS, date_in_id, display_name, dump, parse  # noqa: E402

# The installed SDKs' sources of model ids, and the kind each implies (the old run-time catalogue's sources).
OPENAI_SOURCES = (
    ("openai.types", "ChatModel", "chat"), ("openai.types", "ResponsesModel", "chat"),
    ("openai.types.completion_create_params", None, "completion"), ("openai.types", "EmbeddingModel", "embedding"),
    ("openai.types", "ModerationModel", "moderation"), ("openai.types", "ImageModel", "image"),
    ("openai.types", "AudioModel", "transcription"), ("openai.types.audio", "SpeechModel", "speech"),
    ("openai.types", "VideoModel", "video"),
)


def _literals(annotation) -> list[str]:
    """Every string in a Literal, also when nested in a Union (`str | Literal[...]`)."""
    out: list[str] = []
    for arg in typing.get_args(annotation):
        out.extend([arg] if isinstance(arg, str) else _literals(arg))
    return out


def sdk_ids() -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """{id: (owner, kind)} from the installed SDKs, first source wins; and their versions."""
    import importlib

    import anthropic
    import anthropic.types
    import openai

    found: dict[str, tuple[str, str]] = {}
    for module_name, attr, kind in OPENAI_SOURCES:
        module = importlib.import_module(module_name)
        if attr is None:  # the legacy completions endpoint's own `model` literal
            source = typing.get_type_hints(module.CompletionCreateParamsBase)["model"]
        elif (source := getattr(module, attr, None)) is None:
            continue  # an SDK without this kind of model
        for model_id in _literals(source):
            found.setdefault(model_id, ("openai", kind))
    for model_id in _literals(anthropic.types.Model):
        found.setdefault(model_id, ("anthropic", "chat"))
    return found, {"openai": openai.__version__, "anthropic": anthropic.__version__}


def _today() -> int:
    now = datetime.now(timezone.utc)
    return int(datetime(now.year, now.month, now.day, tzinfo=timezone.utc).timestamp())


def new_entry(catalogue, model_id: str, owner: str | None, kind: str | None) -> tuple[dict | None, str]:
    """The entry a new id gets from its family (kind: the SDK's when it says), and a note for the report."""
    family = catalogue.family(model_id)
    if family is None:
        return None, "no family matches: add one to the file (or the entry by hand)"
    entry = {"id": model_id, **{k: family[k] for k in DEFAULTS}, "created": date_in_id(model_id) or _today()}
    note = f"family {family['pattern']}"
    if kind is not None and kind != family["kind"]:
        entry["kind"] = kind
        note += f" (kind {kind}: the SDK's, the family says {family['kind']})"
    if owner is not None and owner != family["owned_by"]:
        note += f" (the SDK is {owner}'s, the family says {family['owned_by']})"
    if entry["owned_by"] == "anthropic":
        entry["display_name"] = display_name(model_id)
    return entry, note


def _insert(models: list[dict], entry: dict) -> None:
    """At its sorted place among the entries of its owner and kind (the file's grouping); nothing else moves."""
    key = (OWNERS.index(entry["owned_by"]), KINDS.index(entry["kind"]))
    group = [i for i, m in enumerate(models) if (OWNERS.index(m["owned_by"]), KINDS.index(m["kind"])) == key]
    after = [i for i in group if models[i]["id"] > entry["id"]]
    if after:
        models.insert(after[0], entry)
    elif group:
        models.insert(group[-1] + 1, entry)
    else:
        later = [i for i, m in enumerate(models) if (OWNERS.index(m["owned_by"]), KINDS.index(m["kind"])) > key]
        models.insert(later[0] if later else len(models), entry)


def bump(version: str) -> str:
    """Today's date; a second refresh on the same day gets `.2`, `.3`, ..."""
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    if not version.startswith(today):
        return today
    _, _, n = version.partition(".")
    return f"{today}.{int(n or 1) + 1}"


def _day(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=CATALOGUE_FILE, help="the catalogue file (default: %(default)s)")
    parser.add_argument("--write", action="store_true", help="add the new ids to the file and bump its version")
    parser.add_argument("--add", action="append", default=[], metavar="ID", help="also add this id (no SDK lists it yet); repeatable")
    args = parser.parse_args(argv)

    text = args.file.read_text(encoding="utf-8")
    catalogue = parse(text)
    data = json.loads(text)
    known, versions = sdk_ids()
    print(f"{args.file}: version {catalogue.version}, {len(catalogue.models)} models, {len(catalogue.families)} families")
    print(f"installed SDKs: openai {versions['openai']}, anthropic {versions['anthropic']}")

    wanted = {i: v for i, v in known.items() if i not in catalogue.models}
    wanted.update({i: (None, None) for i in args.add if i not in catalogue.models})
    added: list[dict] = []
    print(f"\nids the SDKs (or --add) name that the file lacks: {len(wanted)}")
    for model_id, (owner, kind) in wanted.items():
        entry, note = new_entry(catalogue, model_id, owner, kind)
        if entry is None:
            print(f"  {model_id}  [{owner or '?'}] {note}")
            continue
        added.append(entry)
        print(f"  {model_id}  {entry['owned_by']} {entry['kind']}, created {_day(entry['created'])}, "
              f"context {entry['context_window']}, max output {entry['max_output_tokens']}  <- {note}")

    dropped = [m["id"] for m in catalogue.models.values() if m["owned_by"] in ("openai", "anthropic") and m["id"] not in known]
    print(f"\nids the file has that the installed SDKs no longer list (they stay: clients still send them): {len(dropped)}")
    for model_id in dropped:
        print(f"  {model_id}")

    if not args.write:
        if added:
            print("\nrun with --write to add them")
        return 0
    if not added:
        print("\nnothing to write")
        return 0
    models = list(data["models"])
    for entry in added:
        _insert(models, entry)
    version = bump(catalogue.version)
    args.file.write_text(dump(version, data["families"], models), encoding="utf-8")
    print(f"\nwrote {len(added)} new ids to {args.file}, version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
