"""The event buses (the port is app/core/events.py): in memory by default (jobs run in the same
process); Redis pub/sub in team mode, where a run executes in an arq worker and its client is connected
to any API process. Both keep a channel's `keep=True` events for `KEEP_SECONDS` after the last one.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
import time
from typing import Any, AsyncIterator

import msgspec

log = logging.getLogger("understudy.events")
KEEP_SECONDS = 3600


def _decode(raw: bytes) -> Any:
    """An event from its JSON: a published tuple comes back a tuple (its items as JSON gives them)."""
    event = msgspec.json.decode(raw)
    return tuple(event) if isinstance(event, list) else event


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
        self._kept: dict[str, tuple[float, list]] = {}  # channel -> (expiry, events)
        self._next_sweep = 0.0

    async def publish(self, channel: str, event: Any, *, keep: bool = False) -> None:
        if not keep and not self._subscribers.get(channel):
            return
        # Readers get the event as it was when published, as they would from Redis: a publisher goes on
        # changing its objects (a run's message is completed right after `thread.message.created`).
        snapshot = _decode(msgspec.json.encode(event))
        if keep:
            now = time.monotonic()
            events = self._kept[channel][1] if channel in self._kept else []
            events.append(snapshot)
            self._kept[channel] = (now + KEEP_SECONDS, events)
            if now >= self._next_sweep:  # histories nobody forgot expire, as Redis expires them
                self._next_sweep = now + 60
                for name in [name for name, (expiry, _) in self._kept.items() if expiry < now]:
                    del self._kept[name]
        self.deliver(channel, snapshot)

    def deliver(self, channel: str, event: Any) -> None:
        """Hands `event` itself (no copy) to the channel's local subscribers."""
        for subscription in self._subscribers.get(channel, ()):
            subscription.queue.put_nowait(event)

    async def kept(self, channel: str) -> list:
        expiry, events = self._kept.get(channel, (0.0, []))
        return list(events) if expiry >= time.monotonic() else []

    async def forget(self, channel: str) -> None:
        self._kept.pop(channel, None)

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
        self._kept.clear()


class RedisEventBus:
    """Redis pub/sub, one connection per process: every local subscriber of a channel shares one Redis
    subscription (fanned out in memory), and `subscribe` returns only once Redis has confirmed it, so
    nothing published after that is missed. Events are JSON; a published tuple arrives as a tuple (its
    items as JSON gives them: nested tuples become lists).

    A kept history is a Redis list beside the channel, appended in the same MULTI as the PUBLISH: a
    reader that subscribes, then reads the list, sees every event at least once (in the list, or on the
    subscription, or both: it drops repeats by their own numbering). It expires `KEEP_SECONDS` after the
    last event kept."""

    name = "redis"
    PREFIX = "understudy:events:"
    KEPT_PREFIX = "understudy:kept:"

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url)
        self._pubsub = self._redis.pubsub()
        self._local = InMemoryEventBus()
        self._counts: dict[str, int] = {}
        # Per channel: SUBSCRIBE commands sent whose confirmation has not come back yet, and the future
        # the joiners wait on. Counting (not just "a confirmation came") matters when a channel is left
        # and joined again before the first confirmation arrives: the stale one must not release the
        # new joiner before Redis has its new subscription.
        self._pending: dict[str, int] = {}
        self._confirmed: dict[str, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None
        # redis-py's PubSub opens its connection on the first command without a lock: concurrent first
        # subscribes would each open one (and lose all but the last). Commands take turns.
        self._commands = asyncio.Lock()

    async def publish(self, channel: str, event: Any, *, keep: bool = False) -> None:
        data = msgspec.json.encode(event)
        if not keep:
            await self._redis.publish(self.PREFIX + channel, data)
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self.KEPT_PREFIX + channel, data)
            pipe.expire(self.KEPT_PREFIX + channel, KEEP_SECONDS)
            pipe.publish(self.PREFIX + channel, data)
            await pipe.execute()

    async def kept(self, channel: str) -> list:
        return [_decode(raw) for raw in await self._redis.lrange(self.KEPT_PREFIX + channel, 0, -1)]

    async def forget(self, channel: str) -> None:
        await self._redis.delete(self.KEPT_PREFIX + channel)

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
            confirmed = self._confirmed.get(channel)
            if confirmed is None or confirmed.done():
                self._confirmed[channel] = asyncio.get_running_loop().create_future()
            self._pending[channel] = self._pending.get(channel, 0) + 1
            try:
                async with self._commands:
                    await self._pubsub.subscribe(self.PREFIX + channel)
            except BaseException:  # not sent (as far as we know): nothing to wait for
                self._pending[channel] -= 1
                if not self._pending[channel]:
                    del self._pending[channel]
                await self._leave(channel)
                raise
            if self._reader is None:
                self._reader = asyncio.create_task(self._read(), name="event-bus-reader")
        confirmed = self._confirmed.get(channel)
        if confirmed is not None:
            try:
                await asyncio.wait_for(asyncio.shield(confirmed), 10)
            except BaseException:
                await self._leave(channel)
                raise

    async def _leave(self, channel: str) -> None:
        self._counts[channel] -= 1
        if self._counts[channel] == 0:
            del self._counts[channel]
            if not self._pending.get(channel):
                self._confirmed.pop(channel, None)  # else the reader drops it with the last confirmation
            async with self._commands:
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
                self._local.deliver(channel, _decode(message["data"]))
            elif message["type"] == "subscribe":
                pending = self._pending.get(channel, 0) - 1
                if pending > 0:
                    self._pending[channel] = pending
                    continue
                self._pending.pop(channel, None)
                confirmed = self._confirmed.get(channel)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
                if channel not in self._counts:
                    self._confirmed.pop(channel, None)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
            self._reader = None
        await self._pubsub.aclose()
        await self._redis.aclose()
