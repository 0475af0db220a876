"""The EventBus contract, one suite for every backend (only in-memory today: a new backend is one more
entry in BUS_FACTORIES plus, if it keeps subscribers elsewhere, one more `subscriber_count`)."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from app.events import InMemoryEventBus

pytestmark = pytest.mark.anyio
TIMEOUT = 5.0  # liveness only: a delivered event arrives in milliseconds


@pytest.fixture
def anyio_backend():
    return "asyncio"


def subscriber_count(bus, channel: str) -> int:
    """How many live subscriptions the bus holds for `channel` (backend-specific introspection)."""
    if isinstance(bus, InMemoryEventBus):
        return len(bus._subscribers.get(channel, ()))
    raise NotImplementedError(type(bus))


BUS_FACTORIES = {"memory": InMemoryEventBus}


@pytest.fixture(params=list(BUS_FACTORIES))
async def bus(request):
    instance = BUS_FACTORIES[request.param]()
    yield instance
    await instance.close()


@pytest.fixture
def channel() -> str:
    return f"run_{uuid.uuid4().hex}"


async def take(subscription, n: int) -> list:
    """The next n events of a subscription, failing (not hanging) if they do not come."""
    iterator = aiter(subscription)
    return [await asyncio.wait_for(anext(iterator), TIMEOUT) for _ in range(n)]


async def nothing_more(subscription, wait: float = 0.2) -> bool:
    iterator = aiter(subscription)
    try:
        await asyncio.wait_for(anext(iterator), wait)
    except asyncio.TimeoutError:
        return True
    return False


async def test_subscriber_gets_events_published_after_subscribing_in_order(bus, channel):
    await bus.publish(channel, {"n": -1})  # before anyone listens: not delivered to later subscribers
    async with bus.subscribe(channel) as subscription:
        events = [{"n": i, "text": f"delta {i}"} for i in range(20)]
        for event in events:
            await bus.publish(channel, event)
        assert await take(subscription, 20) == events
        assert await nothing_more(subscription)


async def test_events_published_from_another_task_arrive(bus, channel):
    async with bus.subscribe(channel) as subscription:
        async def producer():
            for i in range(5):
                await asyncio.sleep(0.01)
                await bus.publish(channel, i)

        task = asyncio.create_task(producer())
        assert await take(subscription, 5) == [0, 1, 2, 3, 4]
        await task


async def test_two_subscribers_both_get_every_event(bus, channel):
    async with bus.subscribe(channel) as first, bus.subscribe(channel) as second:
        assert subscriber_count(bus, channel) == 2
        for i in range(3):
            await bus.publish(channel, {"i": i})
        assert await take(first, 3) == [{"i": 0}, {"i": 1}, {"i": 2}]
        assert await take(second, 3) == [{"i": 0}, {"i": 1}, {"i": 2}]


async def test_other_channels_are_not_delivered(bus, channel):
    other = channel + "_other"
    async with bus.subscribe(channel) as mine, bus.subscribe(other) as theirs:
        await bus.publish(other, "for them")
        await bus.publish(channel, "for me")
        assert await take(mine, 1) == ["for me"]
        assert await nothing_more(mine)
        assert await take(theirs, 1) == ["for them"]


async def test_nothing_accumulates_after_the_subscription_ends(bus, channel):
    async with bus.subscribe(channel) as subscription:
        await bus.publish(channel, 1)
        assert await take(subscription, 1) == [1]
        assert subscriber_count(bus, channel) == 1
    assert subscriber_count(bus, channel) == 0
    for i in range(100):
        await bus.publish(channel, i)  # nobody holds these
    assert subscriber_count(bus, channel) == 0
    if isinstance(bus, InMemoryEventBus):
        assert channel not in bus._subscribers  # the channel's entry itself is gone


async def test_subscription_ends_cleanly_when_the_block_raises(bus, channel):
    with pytest.raises(ValueError):
        async with bus.subscribe(channel):
            assert subscriber_count(bus, channel) == 1
            raise ValueError("client went away")
    assert subscriber_count(bus, channel) == 0


async def test_one_subscriber_leaving_keeps_the_other(bus, channel):
    async with bus.subscribe(channel) as staying:
        async with bus.subscribe(channel):
            pass
        assert subscriber_count(bus, channel) == 1
        await bus.publish(channel, "still here")
        assert await take(staying, 1) == ["still here"]


async def test_publish_without_subscribers_is_a_no_op(bus, channel):
    await bus.publish(channel, {"nobody": "listens"})
    assert subscriber_count(bus, channel) == 0
    # and a subscriber arriving afterwards does not get it
    async with bus.subscribe(channel) as subscription:
        assert await nothing_more(subscription)


async def test_a_new_subscription_can_be_opened_again_on_the_same_channel(bus, channel):
    for round_ in range(3):
        async with bus.subscribe(channel) as subscription:
            await bus.publish(channel, round_)
            assert await take(subscription, 1) == [round_]
    assert subscriber_count(bus, channel) == 0
