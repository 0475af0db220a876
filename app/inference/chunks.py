"""Folding a stream of `chat.completion.chunk`s back into the `chat.completion` it describes
(stored completions of streamed requests, and tests)."""
from __future__ import annotations


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
                choice.get("index", 0), {"content": None, "refusal": None, "tool_calls": {}, "finish_reason": None, "logprobs": None}
            )
            delta = choice.get("delta") or {}
            for field in ("content", "refusal"):
                if delta.get(field) is not None:
                    state[field] = (state[field] or "") + delta[field]
            for call in delta.get("tool_calls") or ():
                slot = state["tool_calls"].setdefault(call.get("index", 0), {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                slot["id"] = slot["id"] or call.get("id")
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
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
            if state["tool_calls"]:
                message["tool_calls"] = [state["tool_calls"][i] for i in sorted(state["tool_calls"])]
            choices.append({"index": index, "message": message, "finish_reason": state["finish_reason"] or "stop", "logprobs": state["logprobs"]})
        body = {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model, "choices": choices}
        if self.system_fingerprint:
            body["system_fingerprint"] = self.system_fingerprint
        if self.service_tier:
            body["service_tier"] = self.service_tier
        if self.usage:
            body["usage"] = self.usage
        return body
