"""A Responses request as a chat-completions request, and the Response object's echo of the request.

Tools: functions (and custom tools) pass through as chat tools; `file_search`, `image_generation`,
`code_interpreter` and a hosted `shell` (environment `container_auto` or `container_reference`, with its
skills) are offered as functions of those names and executed by the engine (the image through the
platform's image service, code in a container: app/services/responses/code.py, the shell in the code
sandbox). `web_search` needs the web, which this server has not: a web_search tool is refused with a 400
unless it is cache-only (`external_web_access: false`, what Codex always sends), which is echoed but not
offered. Other hosted tools no provider here executes (mcp, tool_search, …) may be listed and are echoed
but not offered to the model, which answers without them as a model that chose not to use them would; a
`tool_choice` that forces one is refused with a 400. (A request relayed whole to a Responses-speaking
upstream never comes here: that upstream serves its own tools.)
"""
from __future__ import annotations

import time

from app.core.errors import APIError, invalid_request
from app.inference.base import served_tier
from app.services.assistants.prompt import FILE_SEARCH
from app.services.inference import streamed_chat_request
from app.services.responses import code as code_tool
from app.services.images import ImagesService, family, image_models
from app.services.skills.shell import HOSTED as SHELL_HOSTED

SEARCH_FUNCTION = {"type": "function", "function": {**FILE_SEARCH["function"], "description":
                   "Search the files of the vector stores given to this response; returns the most relevant passages."}}


IMAGE_FUNCTION = {"type": "function", "function": {
    "name": "image_generation", "description": "Generate an image from a description; the image is shown to the user.",
    "parameters": {"type": "object", "properties": {"prompt": {"type": "string", "description": "A detailed description of the image."}},
                   "required": ["prompt"], "additionalProperties": False}}}
SHELL_FUNCTION = {"type": "function", "function": {
    "name": "shell", "description": "Run shell commands (/bin/sh) in a fresh sandbox whose working directory holds the skills and files given to "
                                    "this response; returns each command's stdout, stderr and exit code.",
    "parameters": {"type": "object", "properties": {"commands": {"type": "array", "items": {"type": "string"}, "description": "The commands to run, in order."}},
                   "required": ["commands"], "additionalProperties": False}}}
BUILTIN = ("file_search", "image_generation", "code_interpreter", "shell")  # hosted tools the engine runs itself (offered as functions)
IMAGE_MODEL = "gpt-image-2.6-sunburst"  # the tool's default model (the SDK's documented default)
_IMAGE_DEFAULTS = {"background": "auto", "model": IMAGE_MODEL, "moderation": "auto", "output_compression": 100, "output_format": "png",
                   "partial_images": 0, "quality": "auto", "size": "auto"}
_IMAGE_SETTINGS = ("size", "quality", "output_format", "output_compression", "background", "moderation", "partial_images",
                   "frame_count", "frame_duration_ms")


def image_params(tool: dict, prompt: str) -> dict:
    """An image_generation tool's settings as a /v1/images/generations request for `prompt`."""
    params = {"model": tool.get("model") or IMAGE_MODEL, "prompt": prompt, "n": 1}
    params.update({k: tool[k] for k in _IMAGE_SETTINGS if tool.get(k) is not None})
    if params.get("partial_images"):
        params["stream"] = True
    return params


def _check_image_tool(tool: dict, index: int) -> dict:
    """The tool with defaults filled in; its settings checked as the image service checks a generation."""
    model_id = tool.get("model") or IMAGE_MODEL
    models = [m for m in image_models() if family(m) == "gpt"]
    if model_id not in models:
        listed = ", ".join(f"'{m}'" for m in models)
        raise invalid_request(f"Invalid value: '{model_id}'. Supported values are: {listed}.", param=f"tools[{index}].model", code="invalid_value")
    try:
        ImagesService(None, None).plan_generate("", image_params(tool, "check"))
    except APIError as error:
        error.param = f"tools[{index}].{error.param}" if error.param else f"tools[{index}]"
        raise
    return {**_IMAGE_DEFAULTS, **{k: v for k, v in tool.items() if v is not None}}


def _check_web_search(tool: dict, index: int) -> dict:
    """Cache-only web search (no live access: what Codex sends) is echoed, not offered; live search is refused."""
    if tool.get("external_web_access") is False:
        return dict(tool)
    raise invalid_request(f"The {tool['type']} tool is not available: this server has no web access (no upstream provider serves it).",
                          param=f"tools[{index}]", code="unsupported_tool")


def unavailable(kind: str, param: str):
    return invalid_request(f"The {kind} tool is not available: no upstream provider serves it.", param=param, code="unsupported_tool")


def check_tools(tools: list[dict]) -> list[dict]:
    """The tools as the Response echoes them (defaults filled in)."""
    out = []
    for index, tool in enumerate(tools or ()):
        kind = tool.get("type")
        if kind == "function":
            out.append({"type": "function", "name": tool["name"], "description": tool.get("description"),
                        "parameters": tool.get("parameters"), "strict": tool.get("strict", True)})
        elif kind == "file_search":
            if not tool.get("vector_store_ids"):
                raise invalid_request("Missing required parameter: 'tools[%d].vector_store_ids'." % index, param=f"tools[{index}].vector_store_ids",
                                      code="missing_required_parameter")
            out.append({"type": "file_search", "vector_store_ids": list(tool["vector_store_ids"]), "filters": tool.get("filters"),
                        "max_num_results": tool.get("max_num_results", 20),
                        "ranking_options": {"ranker": "auto", "score_threshold": 0.0, **(tool.get("ranking_options") or {})}})
        elif kind == "image_generation":
            out.append(_check_image_tool(tool, index))
        elif kind == "code_interpreter":
            out.append(code_tool.check_tool(tool, index))
        elif isinstance(kind, str) and kind.startswith("web_search"):
            out.append(_check_web_search(tool, index))
        else:
            out.append(dict(tool))  # custom tools are offered to the model; hosted ones only echoed
    return out


def chat_tools(tools: list[dict], custom: bool = True) -> list[dict]:
    """Functions (and, for providers that take them, custom tools) as chat tools; file_search,
    image_generation and code_interpreter as functions."""
    out = []
    for tool in tools:
        if tool["type"] == "function":
            function = {"name": tool["name"]}
            for key in ("description", "parameters", "strict"):
                if tool.get(key) is not None:
                    function[key] = tool[key]
            out.append({"type": "function", "function": function})
        elif tool["type"] == "file_search":
            out.append(SEARCH_FUNCTION)
        elif tool["type"] == "image_generation":
            out.append(IMAGE_FUNCTION)
        elif tool["type"] == "shell" and (tool.get("environment") or {}).get("type") in SHELL_HOSTED:
            out.append(SHELL_FUNCTION)  # a `local` shell is the client's to run: echoed, not offered
        elif tool["type"] == "code_interpreter":
            out.append(code_tool.CODE_FUNCTION)
        elif tool["type"] == "custom" and custom:
            spec = {"name": tool["name"], **({"description": tool["description"]} if tool.get("description") else {})}
            fmt = tool.get("format") or {"type": "text"}
            if fmt.get("type") == "grammar":
                spec["format"] = {"type": "grammar", "grammar": {"syntax": fmt.get("syntax"), "definition": fmt.get("definition")}}
            else:
                spec["format"] = {"type": "text"}
            out.append({"type": "custom", "custom": spec})
    return out


def chat_tool_choice(choice):
    if choice is None or isinstance(choice, str):
        return choice
    kind = choice.get("type")
    if kind == "function":
        return {"type": "function", "function": {"name": choice["name"]}}
    if kind == "allowed_tools":
        names = [{"type": "function", "function": {"name": t.get("name") or t.get("type")}} for t in choice.get("tools") or ()]
        return {"type": "allowed_tools", "allowed_tools": {"mode": choice.get("mode", "auto"), "tools": names}}
    if kind in BUILTIN:
        return {"type": "function", "function": {"name": kind}}
    if kind == "custom":
        return {"type": "custom", "custom": {"name": choice["name"]}}
    raise unavailable(kind, "tool_choice")


def response_format(text: dict | None) -> dict | None:
    fmt = (text or {}).get("format") or {"type": "text"}
    if fmt["type"] == "json_schema":
        schema = {"name": fmt.get("name") or "response", "schema": fmt.get("schema") or {}}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        if fmt.get("description"):
            schema["description"] = fmt["description"]
        return {"type": "json_schema", "json_schema": schema}
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    return None


def chat_params(params: dict, tools: list[dict], messages: list[dict], max_tokens: int | None, custom: bool = True) -> dict:
    functions = chat_tools(tools, custom)
    out = streamed_chat_request(params["model"], messages, functions, chat_tool_choice(params.get("tool_choice")) if functions else None, params)
    fmt = response_format(params.get("text"))
    if fmt is not None:
        out["response_format"] = fmt
    if max_tokens is not None:
        out["max_completion_tokens"] = max_tokens
    if "message.output_text.logprobs" in (params.get("include") or ()) or params.get("top_logprobs"):
        out["logprobs"] = True
        if params.get("top_logprobs"):
            out["top_logprobs"] = params["top_logprobs"]
    effort = (params.get("reasoning") or {}).get("effort")
    if effort:
        out["reasoning_effort"] = effort  # as asked: a model that takes no effort answers as OpenAI's would
    return out


def new_response(response_id: str, params: dict, tools: list[dict], status: str) -> dict:
    """The wire Response, before any output: the request's settings echoed with OpenAI's defaults."""
    text = dict(params.get("text") or {})
    text.setdefault("format", {"type": "text"})
    text.setdefault("verbosity", "medium")
    conversation = params.get("conversation")
    if isinstance(conversation, str):
        conversation = {"id": conversation}
    reasoning = params.get("reasoning") or {}
    return {
        "id": response_id, "object": "response", "created_at": int(time.time()), "status": status, "background": bool(params.get("background")),
        "completed_at": None, "conversation": {"id": conversation["id"]} if conversation else None, "error": None, "incomplete_details": None,
        "instructions": params.get("instructions"), "max_output_tokens": params.get("max_output_tokens"),
        "max_tool_calls": params.get("max_tool_calls"), "metadata": params.get("metadata") or {}, "model": params["model"], "output": [],
        "parallel_tool_calls": params.get("parallel_tool_calls", True), "previous_response_id": params.get("previous_response_id"),
        "prompt_cache_key": params.get("prompt_cache_key"), "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": params.get("safety_identifier"), "service_tier": served_tier(params.get("service_tier")), "store": params.get("store", True),
        "temperature": params.get("temperature", 1.0), "text": text, "tool_choice": params.get("tool_choice") or "auto", "tools": tools,
        "top_logprobs": params.get("top_logprobs", 0), "top_p": params.get("top_p", 1.0), "truncation": params.get("truncation") or "disabled",
        **({"user": params["user"]} if params.get("user") is not None else {}),
    }


def usage(input_tokens: int, output_tokens: int) -> dict:
    return {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": input_tokens + output_tokens}
