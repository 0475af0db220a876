"""Validate response bodies against the official OpenAPI specs in ../shared: OpenAI's, and Anthropic's mirror."""
from __future__ import annotations

from functools import cache
from pathlib import Path

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SHARED = Path(__file__).resolve().parents[3] / "shared"
SPEC_PATHS = {"openai": SHARED / "openai-openapi" / "openapi.yaml", "anthropic": SHARED / "anthropic-openapi" / "openapi.yaml"}


def _fix_nullable(node):
    """The spec mixes OpenAPI 3.0's `nullable: true` into 3.1 schemas; JSON Schema ignores it."""
    if isinstance(node, dict):
        node = {k: _fix_nullable(v) for k, v in node.items()}
        if node.pop("nullable", False) is True:
            return {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_fix_nullable(v) for v in node]
    return node


@cache
def _spec(which: str) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATHS[which].open() as fh:
        return _fix_nullable(yaml.load(fh, Loader=loader))


def schemas(which: str = "openai") -> dict:
    """The spec's component schemas, by name (nullable already rewritten as JSON Schema)."""
    return _spec(which)["components"]["schemas"]


@cache
def _validator(schema_name: str, which: str) -> jsonschema.Draft202012Validator:
    spec = _spec(which)
    registry = Registry().with_resource("urn:spec", Resource.from_contents(spec, default_specification=DRAFT202012))
    schema = {"$ref": f"urn:spec#/components/schemas/{schema_name}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def assert_matches_schema(body: dict, schema_name: str, spec: str = "openai") -> None:
    errors = sorted(_validator(schema_name, spec).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{schema_name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
