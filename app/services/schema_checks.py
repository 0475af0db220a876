"""The offline model's bounds on client schemas, checked when a request is accepted, under the request's
own parameter names.

The offline model generates values of function parameters and structured-output schemas
(app/inference/providers/offline/schema.py), within the limits of schema_limits.py. It enforces them
itself, but under chat completions' names (`tools[0].function.parameters`); the Responses and
Assistants APIs name the same schemas differently (`tools[0].parameters`, `text.format.schema`), and an
assistant's run fails long after its tools were saved. So those APIs ask here first: a dry run of the
smallest value each schema admits, off the event loop (a hostile schema can cost a second of work).
Only for models the offline model answers: an upstream judges schemas itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from app.inference.providers.offline.offload import offloaded
from app.inference.providers.offline.schema import check_schema
from app.inference.providers.offline.schema_limits import SchemaError, schema_api_error


@dataclass
class Schema:
    param: str  # where the request holds it
    subject: str  # "function 'f'" / "response_format 'name'", for OpenAI's wording
    schema: Any
    code: str


def function(param: str, name: Any, schema: Any) -> Schema:
    return Schema(param, f"function '{name}'", schema, "invalid_function_parameters")


def output(param: str, name: Any, schema: Any) -> Schema:
    return Schema(param, f"response_format '{name}'", schema, "invalid_json_schema")


def _check(schemas: list[Schema]) -> None:
    for item in schemas:
        try:
            check_schema(item.schema)
        except SchemaError as error:
            raise schema_api_error(error, item.param, item.subject, code=item.code) from None


async def check_offline_schemas(inference, tenant_id: str, model: Any, schemas: Iterable[Schema]) -> None:
    """A 400 naming the parameter when a schema is malformed or beyond the offline model's bounds."""
    schemas = [s for s in schemas if s.schema is not None]
    if not schemas or not isinstance(model, str) or inference.provider_for(tenant_id, model).info.kind != "offline":
        return
    await offloaded(_check, schemas)


def chat_shaped(tools: Any, response_format: Any, prefix: str = "") -> list[Schema]:
    """The schemas of chat-shaped `tools` (`{"type": "function", "function": {...}}`, as Assistants and
    runs hold them) and `response_format`."""
    found = []
    for index, tool in enumerate(tools if isinstance(tools, list) else ()):
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if isinstance(fn, dict):
            found.append(function(f"{prefix}tools[{index}].function.parameters", fn.get("name"), fn.get("parameters")))
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") if isinstance(response_format.get("json_schema"), dict) else {}
        found.append(output(f"{prefix}response_format.json_schema.schema", spec.get("name"), spec.get("schema")))
    return found
