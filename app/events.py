"""The event bus: how events produced by a job reach the API process streaming them to a client.

In memory by default (jobs run in the same process); a Redis implementation joins it in team mode.
A subscriber gets every event published on its channel after it subscribed, in order.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Protocol


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[Any]: ...


class EventBus(Protocol):
    name: str

    async def publish(self, channel: str, event: Any) -> None: ...

    def subscribe(self, channel: str): ...  # async context manager yielding a Subscription

    async def close(self) -> None: ...


class _QueueSubscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            yield await self.queue.get()


class InMemoryEventBus:
    name = "memory"

    def __init__(self) -> None:
        self._subscribers: dict[str, set[_QueueSubscription]] = {}

    async def publish(self, channel: str, event: Any) -> None:
        for subscription in self._subscribers.get(channel, ()):
            subscription.queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self, channel: str):
        subscription = _QueueSubscription()
        self._subscribers.setdefault(channel, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[channel]

    async def close(self) -> None:
        self._subscribers.clear()
