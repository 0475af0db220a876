"""Folding `chat.completion.chunk`s: tool-call deltas into calls (`ToolCalls`: the one place that does it,
for the agent loop of runs and responses as for stored completions), and a whole stream back into the
`chat.completion` it describes (stored completions of streamed requests, and tests)."""
from __future__ import annotations

from dataclasses import dataclass

from app.core.ids import new_id


@dataclass
class ToolCall:
    index: int
    id: str
    name: str = ""
    arguments: str = ""  # a custom (freeform) tool's input is its arguments
    custom: bool = False


@dataclass
class CallDelta:
    """What one chunk added to a call: `new` when it opened it, and the name and argument pieces."""
    call: ToolCall
    new: bool
    name: str
    arguments: str


class ToolCalls:
    """A turn's tool calls, by stream index, as their deltas arrive."""

    def __init__(self) -> None:
        self.by_index: dict[int, ToolCall] = {}

    def add(self, piece: dict) -> CallDelta:
        index = piece.get("index", len(self.by_index))
        custom = piece.get("type") == "custom" or piece.get("custom") is not None
        function = (piece.get("custom") if custom else piece.get("function")) or {}
        call = self.by_index.get(index)
        new = call is None
        if new:
            call = self.by_index[index] = ToolCall(index, piece.get("id") or new_id("call_"), custom=custom)
        name = function.get("name") or ""
        arguments = function.get("input" if call.custom else "arguments") or ""
        call.name += name
        call.arguments += arguments
        return CallDelta(call, new, name, arguments)

    def ordered(self) -> list[ToolCall]:
        return [self.by_index[i] for i in sorted(self.by_index)]

    def __len__(self) -> int:
        return len(self.by_index)


class ChunkAccumulator:
    def __init__(self) -> None:
        self.id = self.model = self.system_fingerprint = self.service_tier = None
        self.created = 0
        self.usage = None
        self._choices: dict[int, dict] = {}

    def add(self, chunk: dict) -> None:
        self.id = self.id or chunk.get("id")
        self.model = self.model or chunk.get("model")
        self.created = self.created or chunk.get("created", 0)
        self.system_fingerprint = self.system_fingerprint or chunk.get("system_fingerprint")
        self.service_tier = self.service_tier or chunk.get("service_tier")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            state = self._choices.setdefault(
                choice.get("index", 0), {"content": None, "refusal": None, "tool_calls": ToolCalls(), "ids": {}, "finish_reason": None, "logprobs": None}
            )
            delta = choice.get("delta") or {}
            for field in ("content", "refusal"):
                if delta.get(field) is not None:
                    state[field] = (state[field] or "") + delta[field]
            for piece in delta.get("tool_calls") or ():
                added = state["tool_calls"].add(piece)
                if piece.get("id") and not state["ids"].get(added.call.index):  # the provider's ids (None if it sent none)
                    state["ids"][added.call.index] = piece["id"]
            if choice.get("logprobs"):
                merged = state["logprobs"] or {"content": [], "refusal": None}
                merged["content"] += choice["logprobs"].get("content") or []
                state["logprobs"] = merged
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]

    def completion(self) -> dict:
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message: dict = {"role": "assistant", "content": state["content"], "refusal": state["refusal"]}
            if len(state["tool_calls"]):
                message["tool_calls"] = [_message_call(state["ids"].get(call.index), call) for call in state["tool_calls"].ordered()]
            choices.append({"index": index, "message": message, "finish_reason": state["finish_reason"] or "stop", "logprobs": state["logprobs"]})
        body = {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model, "choices": choices}
        if self.system_fingerprint:
            body["system_fingerprint"] = self.system_fingerprint
        if self.service_tier:
            body["service_tier"] = self.service_tier
        if self.usage:
            body["usage"] = self.usage
        return body


def _message_call(call_id: str | None, call: ToolCall) -> dict:
    if call.custom:
        return {"id": call_id, "type": "custom", "custom": {"name": call.name, "input": call.arguments}}
    return {"id": call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
