"""Which functions the offline model calls, and with what arguments.

A real model calls a tool when the conversation asks for it; the offline model's stand-in for "asks for
it" is that the last user message names the function (case-insensitive, `_` may be written as a space
or a hyphen). `required` and a named `tool_choice` always produce a call; after tool results the model
answers in text (unless a call is forced: then it calls a function it has not called since the user spoke,
if there is one). A function named `file_search` is called for any user
question (real models search attached files before answering); a function named `image_generation`
(the Responses engine's image tool) is called instead when the user's message asks for a picture — it
says image, picture, draw(ing), illustration or photo (or a plural), with that message as its `prompt`;
a function named `code_interpreter` (runs' and responses' code tool) when it asks for computation —
calculate, compute, evaluate, python, plot, a fenced code block or arithmetic (`17 * 23`, `2^10`) — with the
fenced code, else a program that prints the expression's value (or writes the file the message names).
Arguments are generated from the function's `parameters` schema, so they validate, with strings drawn
from the prompt's words; a `code` argument takes the prompt's fenced block, and a function named `shell`
(the Responses engine's hosted shell) runs that block's lines as its `commands` (`ls -R` without one).
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

from app.core.errors import APIError, invalid_request
from app.inference.providers.offline.schema import value_for_schema
from app.inference.providers.offline.schema_limits import SchemaError, check_structure, schema_api_error
from app.inference.providers.offline.text import content_text, last_user_message, words

# What makes the offline model call a function named `image_generation` unprompted: a request for a picture.
IMAGE_WORDS = re.compile(r"(?<![A-Za-z])(images?|pictures?|draw|drawings?|illustrations?|photos?)(?![A-Za-z])", re.IGNORECASE)
# ... and `code_interpreter`: a request for computation.
CODE_WORDS = re.compile(r"(?<![A-Za-z])(calculate|compute|computation|evaluate|python|plot|run (?:this|the) code)(?![A-Za-z])|```",
                        re.IGNORECASE)
_EXPRESSION = re.compile(r"[\d(][\d\s.+\-*/%()^]*[+\-*/%^][\d\s.+\-*/%()^]*[\d)]")
_ARITHMETIC = re.compile(r"\d\s*[+*/^]\s*\(?\d")  # "17 * 23", "2^10": not dates or phone numbers
_FILE_NAME = re.compile(r"(?<![\w/.-])([\w-]+\.(?:txt|csv|json|md))(?![\w])")


@dataclass
class Function:
    name: str
    parameters: dict | None
    param: str = "tools"  # where the request holds `parameters`, for errors

    def schema_error(self, error: SchemaError) -> APIError:
        return schema_api_error(error, self.param, f"function '{self.name}'", code="invalid_function_parameters")


@dataclass
class ToolDecision:
    functions: list[Function]  # to call, in order (empty: answer in text)
    legacy: bool  # `functions` / `function_call` (message.function_call) rather than `tools`


def _functions(params: dict) -> tuple[list[Function], bool]:
    tools = params.get("tools") or []
    if not isinstance(tools, list):
        raise invalid_request("Invalid type for 'tools': expected an array.", param="tools")
    found = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise invalid_request(f"Invalid type for 'tools[{index}]': expected an object.", param=f"tools[{index}]")
        if tool.get("type", "function") == "function":
            function = tool.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise invalid_request(f"Missing required parameter: 'tools[{index}].function.name'.", param=f"tools[{index}].function.name")
            found.append(Function(function["name"], function.get("parameters"), f"tools[{index}].function.parameters"))
    if not tools:
        legacy = params.get("functions") or []
        found = [Function(f["name"], f.get("parameters"), f"functions[{i}].parameters")
                 for i, f in enumerate(legacy if isinstance(legacy, list) else ()) if isinstance(f, dict) and isinstance(f.get("name"), str)]
    for function in found:  # every schema offered must be one, and within the offline model's caps
        if function.parameters is not None:
            try:
                check_structure(function.parameters)
            except SchemaError as error:
                raise function.schema_error(error) from None
    return found, not tools and bool(found or params.get("functions"))


def mention_position(name: str, text: str) -> int | None:
    """Where `text` names the function `name`, or None."""
    parts = [re.escape(p) for p in re.split(r"[_\-\s]+", name) if p]
    if not parts:
        return None
    pattern = r"(?<![A-Za-z0-9])" + r"[_\-\s]+".join(parts) + r"(?![A-Za-z0-9])"
    match = re.search(pattern, text, re.IGNORECASE)
    return match.start() if match else None


def _named(functions: list[Function], name: str) -> Function:
    for function in functions:
        if function.name == name:
            return function
    raise invalid_request(f"Invalid value for 'tool_choice': function '{name}' is not one of the functions in 'tools'.", param="tool_choice")


def decide(params: dict, messages: list[dict]) -> ToolDecision:
    functions, legacy = _functions(params)
    choice = params.get("function_call" if legacy else "tool_choice")
    if choice is None:
        choice = "auto" if functions else "none"
    mode = choice
    if isinstance(choice, dict):
        kind = choice.get("type", "function")
        if kind == "allowed_tools":
            allowed = choice.get("allowed_tools") or {}
            names = {((t or {}).get("function") or {}).get("name") for t in allowed.get("tools") or ()}
            functions = [f for f in functions if f.name in names]
            mode = allowed.get("mode", "auto")
        elif kind == "function":
            name = (choice.get("function") or {}).get("name") if not legacy else choice.get("name")
            if not isinstance(name, str):
                raise invalid_request("Missing required parameter: 'tool_choice.function.name'.", param="tool_choice.function.name")
            if not functions:
                raise invalid_request("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", param="tool_choice")
            return ToolDecision([_named(functions, name)], legacy)
        else:
            raise invalid_request(f"Invalid value for 'tool_choice': the offline model calls only function tools, not '{kind}'.", param="tool_choice")
    if mode not in ("none", "auto", "required"):
        raise invalid_request(f"Invalid value for 'tool_choice': '{mode}'. Supported values are: 'none', 'auto' and 'required'.", param="tool_choice")
    if mode == "required" and not functions:
        raise invalid_request("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", param="tool_choice")
    if mode == "none" or not functions:
        return ToolDecision([], legacy)
    last = messages[-1] if messages else {}
    if mode == "auto" and isinstance(last, dict) and last.get("role") in ("tool", "function"):
        return ToolDecision([], legacy)
    user = last_user_message(messages)
    text = content_text(user.get("content")) if user else ""
    mentioned = sorted(
        ((pos, i, f) for i, f in enumerate(functions) if (pos := mention_position(f.name, text)) is not None),
        key=lambda item: (item[0], item[1]),
    )
    chosen = [f for _, _, f in mentioned]
    if not chosen and isinstance(last, dict) and last.get("role") == "user":
        # A real model draws when asked for a picture and consults attached files before answering a
        # question: so does this one when it is offered the tools the Responses (and Assistants) engines
        # present as functions named image_generation and file_search.
        if IMAGE_WORDS.search(text):
            chosen = [f for f in functions if f.name == "image_generation"]
        if not chosen and (CODE_WORDS.search(text) or _ARITHMETIC.search(text)):
            chosen = [f for f in functions if f.name == "code_interpreter"]
        if not chosen:
            chosen = [f for f in functions if f.name == "file_search"]
    if mode == "required" and isinstance(last, dict) and last.get("role") in ("tool", "function"):
        # Forced again after tool results: a model moves on to a function it has not called yet (Pydantic
        # AI's `final_result` after `get_weather`) rather than repeat the call it has the answer to.
        called = called_since_user(messages)
        fresh = [f for f in chosen if f.name not in called] or [f for f in functions if f.name not in called]
        chosen = fresh or chosen
    if mode == "required" and not chosen:
        chosen = [functions[0]]
    if legacy or params.get("parallel_tool_calls") is False:
        chosen = chosen[:1]
    return ToolDecision(chosen, legacy)


def called_since_user(messages: list[dict]) -> set[str]:
    """The functions the assistant called after the last user message."""
    called: set[str] = set()
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") == "user":
            break
        if message.get("role") == "assistant":
            for call in message.get("tool_calls") or ():
                name = ((call or {}).get("function") or {}).get("name") if isinstance(call, dict) else None
                if isinstance(name, str):
                    called.add(name)
            legacy = message.get("function_call")
            if isinstance(legacy, dict) and isinstance(legacy.get("name"), str):
                called.add(legacy["name"])
    return called


def arguments(function: Function, rng: random.Random, messages: list[dict]) -> str:
    """JSON arguments valid against the function's `parameters`."""
    schema = function.parameters if isinstance(function.parameters, dict) else {}
    if "type" not in schema and not any(k in schema for k in ("$ref", "anyOf", "oneOf", "allOf")):
        schema = {"type": "object", **schema}  # arguments are always an object, even for `{}` parameters
    user = last_user_message(messages)
    name_parts = {part.lower() for part in re.split(r"[_\-\s]+", function.name)}
    hints = [w for w in words(content_text(user.get("content")) if user else "") if w.lower() not in name_parts]
    try:
        value = value_for_schema(schema, rng, words=hints)
    except SchemaError as error:
        raise function.schema_error(error) from None
    text = content_text(user.get("content")) if user else ""
    code = _fenced_code(text)
    if code is None and function.name == "code_interpreter":
        code = _program(text)
    if code is not None and isinstance(value, dict) and isinstance(value.get("code"), str):
        value["code"] = code  # a `code` argument runs what the prompt's fenced block says, not random words
    if function.name == "shell" and isinstance(value, dict) and isinstance(value.get("commands"), list):
        # The Responses hosted shell: the fenced block's lines are the commands (a real model writes them).
        value["commands"] = [line for line in (code or "").splitlines() if line.strip()] or ["ls -R"]
    if function.name == "image_generation" and isinstance(value, dict) and isinstance(value.get("prompt"), str) and user:
        value["prompt"] = content_text(user.get("content")).strip() or value["prompt"]  # the picture asked for, as asked
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _fenced_code(text: str) -> str | None:
    match = re.search(r"```[\w+-]*\n(.*?)```", text, re.DOTALL)
    return match.group(1) if match else None


def _program(text: str) -> str:
    """The code the offline model writes when asked to compute without giving code: the message's arithmetic
    printed, and a file it names written (with that value)."""
    match = _EXPRESSION.search(text)
    expression = " ".join(match.group(0).replace("^", "**").split()) if match else None
    lines = [f"result = {expression}" if expression else f"result = {len(text.split())}  # words in the request", "print(result)"]
    named = _FILE_NAME.search(text)
    if named:
        lines.append(f"open({named.group(1)!r}, 'w').write(str(result) + '\\n')")
        lines.append(f"print('wrote {named.group(1)}')")
    return "\n".join(lines) + "\n"
