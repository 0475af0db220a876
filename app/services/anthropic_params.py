"""Anthropic Messages request bodies (`/v1/messages`, `count_tokens`, batch requests), checked before use.

Every field this server reads is checked for its JSON type, with Anthropic's wording and path
("messages.0.content.1.source: Input should be a valid dictionary"), so a wrong type is a 400 and never
reaches the translators as a crash. A top-level field Anthropic does not know is refused in its words
(`KNOWN_FIELDS`). Deliberately lenient beyond that: Claude Code and newer SDKs send beta fields and
block types this server does not read (they pass; user content blocks the offline
path cannot turn into chat are refused by the translator, also as a 400). The anthropic SDK is a test
dependency only, so these checks are written out rather than a TypeAdapter over its TypedDicts.
"""
from __future__ import annotations

from typing import Any

from app.core.errors import invalid_request
from app.inference.providers.offline.schema_limits import SchemaError, check_structure

_SHOULD = {str: "a valid string", list: "a valid list", dict: "a valid dictionary", bool: "a valid boolean"}
_ROLES = ("user", "assistant", "system")  # "system" turns inside messages: a beta Claude Code sends
_CHOICES = ("auto", "any", "tool", "none")


def _fail(path: str, message: str):
    raise invalid_request(f"{path}: {message}", param=path)


def _is(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _need(value: Any, kind: type, path: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not _is(value, kind):
        _fail(path, f"Input should be {_SHOULD.get(kind, kind.__name__)}")
    return value


def _number(value: Any, path: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        _fail(path, "Input should be a valid number")


def _source(block: dict, path: str) -> None:
    source = _need(block.get("source"), dict, f"{path}.source")
    kind = _need(source.get("type"), str, f"{path}.source.type")
    fields = {"base64": ("media_type", "data"), "url": ("url",), "text": ("data",), "file": ("file_id",)}.get(kind, ())
    for name in fields:
        _need(source.get(name), str, f"{path}.source.{name}")
    if kind == "content" and not isinstance(source.get("content"), str):
        _blocks(_need(source.get("content"), list, f"{path}.source.content"), f"{path}.source.content")


def _block(block: Any, path: str) -> None:
    _need(block, dict, path)
    kind = _need(block.get("type"), str, f"{path}.type")
    if kind == "text":
        _need(block.get("text"), str, f"{path}.text")
    elif kind in ("image", "document"):
        _source(block, path)
        _need(block.get("title"), str, f"{path}.title", optional=True)
    elif kind == "tool_use":
        _need(block.get("id"), str, f"{path}.id")
        _need(block.get("name"), str, f"{path}.name")
        _need(block.get("input"), dict, f"{path}.input")
    elif kind == "tool_result":
        _need(block.get("tool_use_id"), str, f"{path}.tool_use_id")
        _need(block.get("is_error"), bool, f"{path}.is_error", optional=True)
        content = block.get("content")
        if content is not None and not isinstance(content, str):
            _blocks(_need(content, list, f"{path}.content"), f"{path}.content")


def _blocks(blocks: list, path: str) -> None:
    for index, block in enumerate(blocks):
        _block(block, f"{path}.{index}")


def _content(content: Any, path: str) -> None:
    if isinstance(content, str):
        return
    _blocks(_need(content, list, path), path)


def _tools(tools: Any) -> None:
    for index, tool in enumerate(_need(tools, list, "tools")):
        path = f"tools.{index}"
        _need(tool, dict, path)
        _need(tool.get("type"), str, f"{path}.type", optional=True)
        if tool.get("type") in (None, "custom"):  # client tools; server tools (web search, bash, ...) pass as they are
            _need(tool.get("name"), str, f"{path}.name")
            _schema(_need(tool.get("input_schema"), dict, f"{path}.input_schema"), f"{path}.input_schema")
            _need(tool.get("description"), str, f"{path}.description", optional=True)


def _tool_choice(choice: Any) -> None:
    _need(choice, dict, "tool_choice")
    kind = _need(choice.get("type"), str, "tool_choice.type")
    if kind not in _CHOICES:
        _fail("tool_choice.type", "Input should be " + ", ".join(f"'{c}'" for c in _CHOICES[:-1]) + f" or '{_CHOICES[-1]}'")
    if kind == "tool":
        _need(choice.get("name"), str, "tool_choice.name")
    _need(choice.get("disable_parallel_tool_use"), bool, "tool_choice.disable_parallel_tool_use", optional=True)


def _output_format(value: Any, path: str) -> None:
    _need(value, dict, path)
    _need(value.get("type"), str, f"{path}.type")
    if value.get("type") == "json_schema":
        _schema(_need(value.get("schema"), dict, f"{path}.schema"), f"{path}.schema")


def _schema(schema: dict, path: str) -> None:
    """A JSON schema's keywords have their types (`properties` an object, `required` a list of strings)."""
    try:
        check_structure(schema, caps=False)
    except SchemaError as error:
        _fail(path, f"JSON schema is invalid: {error.detail} (in context={error.context!r})")


# Every top-level field Anthropic's Messages API takes, beta ones included (the anthropic SDK's
# `MessageCreateParams` and beta `MessageCreateParams`, and fields older SDKs and clients such as litellm
# still send: sampling settings, the structured-outputs beta's `output_format`). Anything else is refused
# as Anthropic refuses it: "<field>: Extra inputs are not permitted".
KNOWN_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_k", "top_p",
    "tools", "tool_choice", "thinking", "service_tier", "container", "inference_geo", "speed", "cache_control",
    "diagnostics", "user_profile_id", "workspace_id", "output_config", "output_format", "betas", "mcp_servers",
    "context_management", "compaction", "billing_policy", "fallback_credit_token", "fallbacks", "thread",
})


def check_message_params(params: dict, *, count_only: bool = False) -> dict:
    """The body, unchanged, when every field this server reads has its type; else Anthropic's 400.
    `count_only`: a `count_tokens` body (no `max_tokens`)."""
    for name in params:
        if name not in KNOWN_FIELDS:
            _fail(name, "Extra inputs are not permitted")
    if not isinstance(params.get("model"), str) or not params["model"]:
        _fail("model", "Field required")
    if not count_only:
        max_tokens = params.get("max_tokens")
        if not _is(max_tokens, int) or max_tokens < 1:
            _fail("max_tokens", "Field required (an integer of at least 1)")
    messages = params.get("messages")
    if not isinstance(messages, list):
        _fail("messages", "Field required (a list)")
    if not messages:
        _fail("messages", "List should have at least 1 item after validation, not 0")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            _fail(f"messages.{index}.role", "Input should be 'user' or 'assistant'")
        if "content" not in message:
            _fail(f"messages.{index}.content", "Field required")
        _content(message["content"], f"messages.{index}.content")
        if message["content"] in ("", []) and not (index == len(messages) - 1 and message["role"] == "assistant"):
            _fail(f"messages.{index}", "all messages must have non-empty content except for the optional final assistant message")
    system = params.get("system")
    if system is not None and not isinstance(system, str):
        _blocks(_need(system, list, "system"), "system")
    if params.get("tools") is not None:
        _tools(params["tools"])
    if params.get("tool_choice") is not None:
        _tool_choice(params["tool_choice"])
    stops = params.get("stop_sequences")
    if stops is not None:
        for index, stop in enumerate(_need(stops, list, "stop_sequences")):
            _need(stop, str, f"stop_sequences.{index}")
    for name in ("temperature", "top_p"):
        _number(params.get(name), name)
    if params.get("stream") is not None:
        _need(params["stream"], bool, "stream")
    metadata = params.get("metadata")
    if metadata is not None:
        _need(metadata, dict, "metadata")
        _need(metadata.get("user_id"), str, "metadata.user_id", optional=True)
    config = params.get("output_config")
    if config is not None and _need(config, dict, "output_config").get("format") is not None:
        _output_format(config["format"], "output_config.format")
    if params.get("output_format") is not None:  # the structured-outputs beta's spelling
        _output_format(params["output_format"], "output_format")
    return params
