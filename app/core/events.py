"""The event-bus port: how events a job produces reach the API process streaming them to a client.

Implementations live in app/events.py (in memory, Redis). A subscriber gets every event published on its
channel after `subscribe` returned, in order. Events published with `keep=True` are also kept for a
while, on every implementation, so that a reader that subscribes late — in this process or another —
can catch up on what it missed.
"""
from __future__ import annotations

from typing import Any, AsyncIterator, Protocol


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[Any]: ...


class EventBus(Protocol):
    name: str

    async def publish(self, channel: str, event: Any, *, keep: bool = False) -> None:
        """Delivers `event` to the channel's current subscribers; with `keep`, also appends it to the
        channel's kept history (atomically with the delivery), for a reader that subscribes late and
        needs what it missed."""

    def subscribe(self, channel: str): ...  # async context manager yielding a Subscription

    async def kept(self, channel: str) -> list:
        """The channel's kept history, oldest first."""

    async def forget(self, channel: str) -> None:
        """Drops the channel's kept history."""

    async def close(self) -> None: ...
