"""Scripted rules: what a test decides the model says. A rule is a matcher (`when`) and either an
answer (`reply`) or an injected failure (`fault`); the first rule that matches a model call answers it.

Rules are plain JSON objects (also written in YAML in `UNDERSTUDY_SCRIPT`), checked here once when they
arrive so that matching a call is cheap: the regexes compiled, the JSON paths parsed. Matching sees the
model call as Understudy makes it, in chat-completions shape, whatever protocol the client spoke — which
is why one rule answers a chat call, a Responses call, an Anthropic message and a run alike.
"""
from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field
from typing import Any

import regex  # tiktoken's dependency: its searches take a timeout, so a tenant's regex cannot stall the loop

from app.core.errors import invalid_request

# The provider methods a rule can answer (moderations never are).
_METHODS = ("chat", "chat_stream", "completions", "completions_stream", "embeddings")
# The endpoints a call can come from (`when.endpoint`).
ENDPOINTS = ("chat", "completions", "responses", "messages", "gemini", "runs", "embeddings", "vector_stores", "realtime")
MAX_RULES = 1000  # per tenant
MAX_DELAY_MS = 600_000
MAX_CHUNKS = 10_000
REGEX_SECONDS = 0.05
_WHEN = {"model", "endpoint", "user_contains", "user_regex", "user_equals", "json_path", "nth", "tool_result"}
_REPLY = {"text", "json", "tool_calls", "refusal", "embedding", "embeddings", "usage", "finish_reason"}
_FAULT = {"status", "message", "type", "code", "param", "retry_after", "timeout", "cut_after", "malformed_after"}
_RULE = {"id", "when", "reply", "fault", "times", "probability", "seed", "delay_ms", "chunk_delay_ms"}
_FINISH = ("stop", "length", "tool_calls", "content_filter", "function_call")
_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(-?\d+)\]|\[\"([^\"]*)\"\]")


@dataclass
class Call:
    """A model call as rules see it."""
    endpoint: str
    method: str  # the provider method: chat, chat_stream, completions, completions_stream, embeddings
    params: dict
    _user: str | None = field(default=None, repr=False)
    model: str = field(init=False)

    def __post_init__(self) -> None:
        self.model = str(self.params.get("model") or "")

    @property
    def last_user_text(self) -> str:
        if self._user is None:
            self._user = _last_user_text(self.method, self.params)
        return self._user


@dataclass
class Rule:
    spec: dict  # the rule as it was given, normalised (what GET returns)
    model: str | None
    endpoints: tuple[str, ...] | None
    contains: str | None
    equals: str | None
    pattern: Any
    paths: list[tuple[list, str, Any]]
    nth: int | None
    tool_result: bool | str | None
    times: int | None

    _methods: frozenset = field(init=False, repr=False)
    _model_matches: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Worked out once: a call walks every rule of its tenant.
        self._methods = frozenset(m for m in _METHODS if self.answers_method(m))
        self._model_matches = None if self.model is None else re.compile(fnmatch.translate(self.model)).match

    @property
    def id(self) -> str:
        return self.spec["id"]

    def answers_method(self, method: str) -> bool:
        """Embeddings are answered only by rules that give vectors (or faults aimed at them), text
        calls only by rules that give text, calls or a refusal: a catch-all reply never turns a
        vector store's embeddings into zeros."""
        reply = self.spec.get("reply")
        vectors = reply is not None and ("embedding" in reply or "embeddings" in reply)
        if method == "embeddings":
            return vectors or (reply is None and self.endpoints is not None and bool({"embeddings", "vector_stores"} & set(self.endpoints)))
        return method != "moderations" and not (vectors and not any(k in reply for k in ("text", "json", "tool_calls", "refusal")))

    def matches(self, call: Call) -> bool:
        """Every condition but `nth`, `times` and `probability`, which count (see ScriptService)."""
        if call.method not in self._methods:
            return False
        if self.endpoints is not None and call.endpoint not in self.endpoints:
            return False
        if call.endpoint == "vector_stores" and self.endpoints is None:
            return False  # a vector store's index is only scripted on purpose: its dimensions are fixed
        if self._model_matches is not None and self._model_matches(call.model) is None:
            return False
        if self.contains is not None or self.equals is not None or self.pattern is not None:
            text = call.last_user_text
            if self.contains is not None and self.contains not in text:
                return False
            if self.equals is not None and text.strip() != self.equals.strip():
                return False
            if self.pattern is not None:
                try:
                    if self.pattern.search(text, timeout=REGEX_SECONDS) is None:
                        return False
                except TimeoutError:
                    return False
        if self.tool_result is not None and _has_tool_result(call.params, self.tool_result) != bool(self.tool_result):
            return False
        return all(_path_holds(call.params, steps, op, expected) for steps, op, expected in self.paths)

    def answers_hit(self, hit: int) -> bool:
        """Whether the `hit`-th call matching this rule (1-based) is answered by it."""
        first = self.nth or 1
        if hit < first:
            return False
        if self.nth is not None and self.times is None:
            return hit == first
        return self.times is None or hit < first + self.times


def parse_rule(spec: Any, rule_id: str, where: str = "rule") -> Rule:
    """A rule from its JSON, or a 400 naming the field that is wrong (`where` prefixes it)."""
    if not isinstance(spec, dict):
        raise _bad(where, "expected an object")
    _only(spec, _RULE, where)
    given_id = spec.get("id")
    if given_id is not None and (not isinstance(given_id, str) or not 0 < len(given_id) <= 256 or "/" in given_id):
        # GET and DELETE /rules/{id} must be able to name it.
        raise _bad(f"{where}.id", "expected a non-empty string of at most 256 characters, without '/'")
    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise _bad(f"{where}.when", "expected an object")
    _only(when, _WHEN, f"{where}.when")
    reply, fault = spec.get("reply"), spec.get("fault")
    if (reply is None) == (fault is None):
        raise _bad(where, "give exactly one of 'reply' and 'fault'")
    if isinstance(reply, str):
        reply = {"text": reply}
    normal: dict = {"id": rule_id, "object": "understudy.rule", "when": when}
    if reply is not None:
        normal["reply"] = _check_reply(reply, f"{where}.reply")
    else:
        normal["fault"] = _check_fault(fault, f"{where}.fault")
    times = _int(spec, "times", where, minimum=1)
    nth = _int(when, "nth", f"{where}.when", minimum=1)
    for name in ("delay_ms", "chunk_delay_ms"):
        normal[name] = _int(spec, name, where, minimum=0, maximum=MAX_DELAY_MS) or 0
    probability = spec.get("probability")
    if probability is not None:
        if not _number(probability) or not 0 <= probability <= 1:
            raise _bad(f"{where}.probability", "expected a number from 0 to 1")
    seed = _int(spec, "seed", where, minimum=None)
    normal.update(times=times, probability=probability, seed=seed)
    endpoints = when.get("endpoint")
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    if endpoints is not None and (not isinstance(endpoints, list) or not endpoints or any(e not in ENDPOINTS for e in endpoints)):
        raise _bad(f"{where}.when.endpoint", "expected one of " + ", ".join(ENDPOINTS) + " (or a list of them)")
    for name in ("model", "user_contains", "user_equals", "user_regex"):
        if when.get(name) is not None and not isinstance(when[name], str):
            raise _bad(f"{where}.when.{name}", "expected a string")
    pattern = None
    if when.get("user_regex") is not None:
        try:
            pattern = regex.compile(when["user_regex"])
        except regex.error as error:
            raise _bad(f"{where}.when.user_regex", f"not a valid regular expression ({error})") from None
    tool_result = when.get("tool_result")
    if tool_result is not None and not isinstance(tool_result, (bool, str)):
        raise _bad(f"{where}.when.tool_result", "expected true, false or a function name")
    return Rule(normal, when.get("model"), tuple(endpoints) if endpoints else None, when.get("user_contains"),
                when.get("user_equals"), pattern, _parse_paths(when.get("json_path"), f"{where}.when.json_path"),
                nth, tool_result, times)


def _check_reply(reply: Any, where: str) -> dict:
    if not isinstance(reply, dict) or not reply:
        raise _bad(where, "expected a string or an object")
    _only(reply, _REPLY, where)
    text = reply.get("text")
    if text is not None and not isinstance(text, str) and not (
            isinstance(text, list) and 0 < len(text) <= MAX_CHUNKS and all(isinstance(t, str) for t in text)):
        raise _bad(f"{where}.text", f"expected a string or a list of up to {MAX_CHUNKS} strings (the stream's chunks)")
    if text is not None and "json" in reply:
        raise _bad(where, "give 'text' or 'json', not both")
    if reply.get("refusal") is not None and not isinstance(reply["refusal"], str):
        raise _bad(f"{where}.refusal", "expected a string")
    calls = reply.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list) or not calls:
            raise _bad(f"{where}.tool_calls", "expected a non-empty list")
        for i, call in enumerate(calls):
            if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
                raise _bad(f"{where}.tool_calls[{i}]", "expected an object with a 'name'")
            _only(call, {"name", "arguments", "id"}, f"{where}.tool_calls[{i}]")
            if not isinstance(call.get("arguments", {}), (dict, list, str)):
                raise _bad(f"{where}.tool_calls[{i}].arguments", "expected an object or a JSON string")
    for name in ("embedding",):
        if reply.get(name) is not None and not _vector(reply[name]):
            raise _bad(f"{where}.{name}", "expected a non-empty list of numbers")
    if reply.get("embeddings") is not None and not (isinstance(reply["embeddings"], list) and reply["embeddings"]
                                                    and all(_vector(v) for v in reply["embeddings"])):
        raise _bad(f"{where}.embeddings", "expected a list of lists of numbers, one per input")
    usage = reply.get("usage")
    if usage is not None:
        if not isinstance(usage, dict) or any(k not in ("prompt_tokens", "completion_tokens") or not isinstance(v, int) or v < 0
                                              for k, v in usage.items()):
            raise _bad(f"{where}.usage", "expected {'prompt_tokens': int, 'completion_tokens': int}")
    if reply.get("finish_reason") is not None and reply["finish_reason"] not in _FINISH:
        raise _bad(f"{where}.finish_reason", "expected one of " + ", ".join(_FINISH))
    return reply


def _check_fault(fault: Any, where: str) -> dict:
    if not isinstance(fault, dict):
        raise _bad(where, "expected an object")
    _only(fault, _FAULT, where)
    kinds = [k for k in ("status", "timeout", "cut_after", "malformed_after") if fault.get(k) is not None]
    if len(kinds) != 1:
        raise _bad(where, "give exactly one of 'status', 'timeout', 'cut_after' and 'malformed_after'")
    _int(fault, "status", where, minimum=400, maximum=599)
    _int(fault, "cut_after", where, minimum=0, maximum=MAX_CHUNKS)
    _int(fault, "malformed_after", where, minimum=0, maximum=MAX_CHUNKS)
    for name in ("timeout", "retry_after"):
        value = fault.get(name)
        if value is not None and (not _number(value) or not 0 <= value <= MAX_DELAY_MS / 1000):
            raise _bad(f"{where}.{name}", f"expected seconds from 0 to {MAX_DELAY_MS // 1000}")
    for name in ("message", "type", "code", "param"):
        if fault.get(name) is not None and not isinstance(fault[name], str):
            raise _bad(f"{where}.{name}", "expected a string")
    return fault


def _parse_paths(spec: Any, where: str) -> list[tuple[list, str, Any]]:
    """`{"$.temperature": 0}` (equality) or `[{"path": "$.tools[0].function.name", "equals"|"contains"|"regex"|"exists": …}]`."""
    if spec is None:
        return []
    if isinstance(spec, dict):
        spec = [{"path": path, "equals": value} for path, value in spec.items()]
    if not isinstance(spec, list):
        raise _bad(where, "expected an object of path -> value, or a list of predicates")
    parsed = []
    for i, predicate in enumerate(spec):
        at = f"{where}[{i}]"
        if not isinstance(predicate, dict) or not isinstance(predicate.get("path"), str):
            raise _bad(at, "expected an object with a 'path'")
        ops = [op for op in ("equals", "contains", "regex", "exists") if op in predicate]
        if len(ops) != 1 or set(predicate) != {"path", ops[0]}:
            raise _bad(at, "expected 'path' and exactly one of 'equals', 'contains', 'regex', 'exists'")
        expected = predicate[ops[0]]
        if ops[0] == "regex":
            try:
                expected = regex.compile(expected) if isinstance(expected, str) else None
            except regex.error:
                expected = None
            if expected is None:
                raise _bad(f"{at}.regex", "not a valid regular expression")
        parsed.append((_steps(predicate["path"], f"{at}.path"), ops[0], expected))
    return parsed


def _steps(path: str, where: str) -> list:
    if not path.startswith("$"):
        raise _bad(where, "a JSON path starts with '$' (e.g. '$.tools[0].function.name')")
    steps, position = [], 1
    while position < len(path):
        match = _PATH_STEP.match(path, position)
        if match is None:
            raise _bad(where, f"cannot read the path from character {position}")
        name, index, quoted = match.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        position = match.end()
    return steps


_MISSING = object()


def _path_holds(params: dict, steps: list, op: str, expected: Any) -> bool:
    value: Any = params
    for step in steps:
        if isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict) and step in value:
            value = value[step]
        else:
            value = _MISSING
            break
    if op == "exists":
        return (value is not _MISSING) == bool(expected)
    if value is _MISSING:
        return False
    if op == "equals":
        return value == expected and isinstance(value, bool) == isinstance(expected, bool)  # true is not 1
    if op == "contains":
        if isinstance(value, str):
            return isinstance(expected, str) and expected in value
        return isinstance(value, list) and expected in value
    try:
        return isinstance(value, str) and expected.search(value, timeout=REGEX_SECONDS) is not None
    except TimeoutError:
        return False


def _last_user_text(method: str, params: dict) -> str:
    if method.startswith("chat"):
        for message in reversed(params.get("messages") or ()):
            if isinstance(message, dict) and message.get("role") == "user":
                return _text_of(message.get("content"))
        return ""
    value = params.get("prompt" if method.startswith("completions") else "input")
    if isinstance(value, list):
        return "\n".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _has_tool_result(params: dict, wanted: bool | str) -> bool:
    messages = [m for m in params.get("messages") or () if isinstance(m, dict)]
    results = [m for m in messages if m.get("role") in ("tool", "function")]
    if not isinstance(wanted, str):
        return bool(results)
    names = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict):
                names[call.get("id")] = (call.get("function") or {}).get("name")
    return any(m.get("name") == wanted or names.get(m.get("tool_call_id")) == wanted for m in results)


def _only(spec: dict, allowed: set[str], where: str) -> None:
    for key in spec:
        if key not in allowed:
            raise invalid_request(f"Unknown parameter: '{where}.{key}'.", param=f"{where}.{key}", code="unknown_parameter")


def _int(spec: dict, name: str, where: str, *, minimum: int | None, maximum: int | None = None) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f" from {minimum}" if minimum is not None else ""
        bounds += f" to {maximum}" if maximum is not None else ""
        raise _bad(f"{where}.{name}", f"expected an integer{bounds}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _vector(value: Any) -> bool:
    return isinstance(value, list) and 0 < len(value) <= 65536 and all(_number(v) for v in value)


def _bad(where: str, why: str):
    return invalid_request(f"Invalid '{where}': {why}.", param=where, code="invalid_value")
