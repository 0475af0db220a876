"""The event bus: how events produced by a job reach the API process streaming them to a client.

In memory by default (jobs run in the same process); Redis pub/sub in team mode, where a run executes
in an arq worker and its client is connected to any API process. A subscriber gets every event
published on its channel after `subscribe` returned, in order.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Protocol

import msgspec

log = logging.getLogger("understudy.events")


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


class RedisEventBus:
    """Redis pub/sub, one connection per process: every local subscriber of a channel shares one Redis
    subscription (fanned out in memory), and `subscribe` returns only once Redis has confirmed it, so
    nothing published after that is missed. Events are JSON; a published tuple arrives as a tuple."""

    name = "redis"
    PREFIX = "understudy:events:"

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url)
        self._pubsub = self._redis.pubsub()
        self._local = InMemoryEventBus()
        self._counts: dict[str, int] = {}
        self._confirmed: dict[str, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None

    async def publish(self, channel: str, event: Any) -> None:
        await self._redis.publish(self.PREFIX + channel, msgspec.json.encode(event))

    @asynccontextmanager
    async def subscribe(self, channel: str):
        async with self._local.subscribe(channel) as subscription:
            await self._join(channel)
            try:
                yield subscription
            finally:
                await self._leave(channel)

    async def _join(self, channel: str) -> None:
        count = self._counts.get(channel, 0)
        self._counts[channel] = count + 1
        if count == 0:
            self._confirmed[channel] = asyncio.get_running_loop().create_future()
            await self._pubsub.subscribe(self.PREFIX + channel)
            if self._reader is None:
                self._reader = asyncio.create_task(self._read(), name="event-bus-reader")
        confirmed = self._confirmed.get(channel)
        if confirmed is not None:
            await asyncio.wait_for(asyncio.shield(confirmed), 10)

    async def _leave(self, channel: str) -> None:
        self._counts[channel] -= 1
        if self._counts[channel] == 0:
            del self._counts[channel]
            self._confirmed.pop(channel, None)
            await self._pubsub.unsubscribe(self.PREFIX + channel)

    async def _read(self) -> None:
        skip = len(self.PREFIX)
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # a dropped connection: redis-py reconnects and resubscribes on the next read
                log.exception("event bus: reading from Redis failed; retrying")
                await asyncio.sleep(0.5)
                continue
            if message is None:
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.05)
                continue
            channel = message["channel"].decode()[skip:]
            if message["type"] == "message":
                event = msgspec.json.decode(message["data"])
                await self._local.publish(channel, tuple(event) if isinstance(event, list) else event)
            elif message["type"] == "subscribe":
                confirmed = self._confirmed.get(channel)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self._pubsub.aclose()
        await self._redis.aclose()
