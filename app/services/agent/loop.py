"""The one agent loop: a model turn (streamed), its tool calls folded as they arrive, then the built-in
tools, then the next turn — until a reply, calls for the client, a limit, or a cancel.

Runs (app/services/assistants/executor.py) and responses (app/services/responses/engine.py) both drive
it; each is an `Agent` that supplies its prompts and turns what happens into its own events and objects
(run steps and messages on the bus; Responses output items and stream events). What they share lives
here: opening the model stream, polling for a cancel between chunks, folding text and tool-call deltas,
the usage of each turn (the provider's, else counted with tiktoken), and the limit on model calls.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol

from app.core.tokens import count_chat_tokens, count_tokens
from app.inference.chunks import CallDelta, ToolCalls

MAX_MODEL_CALLS = 16  # per execution: a model that keeps calling built-in tools is stopped
CHECK_SECONDS = 0.25  # how often a streaming turn checks that it was not cancelled


@dataclass
class Turn:
    params: dict
    text: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)  # the model's refusal, when it gives one (`delta.refusal`)
    calls: ToolCalls = field(default_factory=ToolCalls)
    finish: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    again: bool = False  # set by the agent's `end_turn`: another model call follows (built-in tools ran)

    @property
    def truncated(self) -> bool:
        return self.finish == "length"


class Agent(Protocol):
    """What an API supplies to the loop. The `on_*`, `end_turn` and `exhausted` hooks are async
    generators of the API's own events (a run publishes them; a response yields them to its client)."""

    endpoint: str  # "runs" or "responses": what scripted rules see the model calls coming from

    async def request(self, number: int) -> dict | None:
        """The chat-completions params of model call `number`, or None when the execution has ended
        (a limit it checks itself; it has finished its object)."""

    async def check(self) -> None:
        """Raises when the execution was cancelled (or its object moved on) under it."""

    def on_chunk(self, chunk: dict) -> None: ...

    def on_text(self, turn: Turn, text: str, choice: dict) -> AsyncIterator[Any]: ...

    def on_call(self, turn: Turn, delta: CallDelta) -> AsyncIterator[Any]: ...

    def end_turn(self, turn: Turn) -> AsyncIterator[Any]:
        """The turn's end: its message and calls closed, built-in tools run (then `turn.again = True`),
        or the execution finished (a reply, calls for the client, truncation)."""

    def exhausted(self) -> AsyncIterator[Any]:
        """MAX_MODEL_CALLS calls without an end: the execution fails."""


class AgentLoop:
    def __init__(self, inference, tenant_id: str, agent: Agent, *, max_calls: int = MAX_MODEL_CALLS) -> None:
        self.inference = inference
        self.tenant_id = tenant_id
        self.agent = agent
        self.max_calls = max_calls
        self._opened: tuple[dict, Any] | None = None

    async def open(self) -> bool:
        """Opens the first model call ahead of `run`, so that a request the model refuses raises here
        (an ordinary HTTP error) rather than inside a stream. False when there is nothing to call."""
        params = await self.agent.request(0)
        if params is None:
            return False
        self._opened = (params, await self.inference.stream(self.tenant_id, "chat_stream", params, endpoint=self.agent.endpoint))
        return True

    async def run(self) -> AsyncIterator[Any]:
        for number in range(self.max_calls):
            if number == 0 and self._opened is not None:
                params, stream = self._opened
                self._opened = None
            else:
                params = await self.agent.request(number)
                if params is None:
                    return
                stream = await self.inference.stream(self.tenant_id, "chat_stream", params, endpoint=self.agent.endpoint)
            turn = Turn(params)
            async for event in self._stream(turn, stream):
                yield event
            await self.agent.check()
            async for event in self.agent.end_turn(turn):
                yield event
            if not turn.again:
                return
        async for event in self.agent.exhausted():
            yield event

    async def _stream(self, turn: Turn, stream) -> AsyncIterator[Any]:
        agent = self.agent
        checked = time.monotonic()
        reported = False
        async for chunk in stream:
            if time.monotonic() - checked > CHECK_SECONDS:
                await agent.check()
                checked = time.monotonic()
            agent.on_chunk(chunk)
            usage = chunk.get("usage")
            if usage:
                reported = True
                turn.prompt_tokens += usage.get("prompt_tokens") or 0
                turn.completion_tokens += usage.get("completion_tokens") or 0
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    turn.text.append(delta["content"])
                    async for event in agent.on_text(turn, delta["content"], choice):
                        yield event
                if delta.get("refusal"):
                    turn.refusal.append(delta["refusal"])
                    on_refusal = getattr(agent, "on_refusal", None)  # an agent without it keeps the text only
                    if on_refusal is not None:
                        async for event in on_refusal(turn, delta["refusal"]):
                            yield event
                for piece in delta.get("tool_calls") or ():
                    async for event in agent.on_call(turn, turn.calls.add(piece)):
                        yield event
                if choice.get("finish_reason"):
                    turn.finish = choice["finish_reason"]
        if not reported:  # a provider that reports no usage: counted here (tiktoken over the prompt is not free)
            turn.prompt_tokens = count_chat_tokens(turn.params["messages"])
            turn.completion_tokens = count_tokens("".join(turn.text) + "".join(c.arguments for c in turn.calls.ordered()))
