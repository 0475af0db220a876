"""The EventBus contract, one suite for every backend (in memory, and Redis pub/sub on the machine's
Redis: skipped when none answers), then what only the Redis bus does: events crossing between bus
instances (processes), tuples surviving JSON, one Redis subscription per channel, the kept history."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from app.events import KEEP_SECONDS, InMemoryEventBus, RedisEventBus

pytestmark = pytest.mark.anyio
TIMEOUT = 5.0  # liveness only: a delivered event arrives in milliseconds
# Channels are unique per test and nothing is flushed, so the default database serves (and concurrent
# test sessions cannot disturb each other).
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def subscriber_count(bus, channel: str) -> int:
    """How many live subscriptions the bus holds for `channel` (backend-specific introspection)."""
    if isinstance(bus, InMemoryEventBus):
        return len(bus._subscribers.get(channel, ()))
    if isinstance(bus, RedisEventBus):
        local = len(bus._local._subscribers.get(channel, ()))
        assert bus._counts.get(channel, 0) == local  # one Redis subscription, shared by the local ones
        return local
    raise NotImplementedError(type(bus))


def _redis_bus() -> RedisEventBus:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        pytest.skip(f"no Redis on 127.0.0.1:6379: {error}")
    return RedisEventBus(REDIS_URL)


BUS_FACTORIES = {"memory": InMemoryEventBus, "redis": _redis_bus}


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


# -- Redis only -------------------------------------------------------------------------------------

@pytest.fixture
async def redis_buses():
    """Two Redis buses, as two processes (an arq worker publishing, an API process streaming) hold."""
    first, second = _redis_bus(), _redis_bus()
    yield first, second
    await first.close()
    await second.close()


async def test_events_cross_between_bus_instances_in_order_without_loss(redis_buses, channel):
    publisher, reader = redis_buses
    async with reader.subscribe(channel) as subscription:
        # No sleep: once subscribe returned, the very next publish from anywhere is delivered.
        for i in range(200):
            await publisher.publish(channel, ("response.output_text.delta", {"sequence_number": i}))
        events = await take(subscription, 200)
    assert [e[1]["sequence_number"] for e in events] == list(range(200))
    assert all(isinstance(e, tuple) and e[0] == "response.output_text.delta" for e in events)


async def test_tuples_round_trip(redis_buses, channel):
    publisher, reader = redis_buses
    async with reader.subscribe(channel) as subscription:
        sent = [("thread.message.delta", {"delta": {"content": [{"text": "hé"}]}}), ("done", "[DONE]"), {"a": 1}, 7, "x", None]
        for event in sent:
            await publisher.publish(channel, event)
        assert await take(subscription, len(sent)) == sent


async def test_fan_out_to_many_local_subscribers_through_one_redis_subscription(redis_buses, channel):
    publisher, reader = redis_buses
    async with reader.subscribe(channel) as a, reader.subscribe(channel) as b, reader.subscribe(channel) as c:
        assert reader._counts[channel] == 3
        assert reader._pubsub.channels.keys() == {(RedisEventBus.PREFIX + channel).encode()}
        await publisher.publish(channel, "hello")
        for subscription in (a, b, c):
            assert await take(subscription, 1) == ["hello"]
    assert channel not in reader._counts and channel not in reader._confirmed


async def test_many_channels_subscribed_concurrently_each_get_their_events(redis_buses):
    publisher, reader = redis_buses
    channels = [f"run_{uuid.uuid4().hex}" for _ in range(20)]

    async def follow(name: str) -> list:
        async with reader.subscribe(name) as subscription:
            await publisher.publish(name, name)
            return await take(subscription, 1)

    assert await asyncio.gather(*(follow(name) for name in channels)) == [[name] for name in channels]
    assert not reader._counts and not reader._confirmed and not reader._pending


async def test_leaving_and_joining_again_at_once_still_waits_for_redis(redis_buses, channel):
    publisher, reader = redis_buses
    for i in range(20):  # no pause between leaving and joining: confirmations overlap
        async with reader.subscribe(channel) as subscription:
            await publisher.publish(channel, i)
            assert await take(subscription, 1) == [i]


async def test_kept_history_for_a_late_reader(redis_buses, channel):
    publisher, reader = redis_buses
    await publisher.forget(channel)
    for i in range(3):
        await publisher.publish(channel, ("delta", {"n": i}), keep=True)
    await publisher.publish(channel, ("not kept", {}))
    async with reader.subscribe(channel) as subscription:
        assert await reader.kept(channel) == [("delta", {"n": i}) for i in range(3)]
        await publisher.publish(channel, ("delta", {"n": 3}), keep=True)
        assert await take(subscription, 1) == [("delta", {"n": 3})]
    assert len(await reader.kept(channel)) == 4
    ttl = await reader._redis.ttl(RedisEventBus.KEPT_PREFIX + channel)
    assert 0 < ttl <= KEEP_SECONDS
    await reader.forget(channel)
    assert await reader.kept(channel) == []


async def test_kept_history_on_every_bus(bus, channel):
    """The contract the Responses API's resumable streams rely on, in memory as on Redis: `keep=True`
    events are kept in order as they were published, others are not, and `forget` drops them."""
    await bus.forget(channel)
    event = {"n": 0, "text": "first"}
    await bus.publish(channel, ("delta", event), keep=True)
    event["text"] = "changed after publishing"
    await bus.publish(channel, ("not kept", {}))
    await bus.publish(channel, ("delta", {"n": 1}), keep=True)
    assert await bus.kept(channel) == [("delta", {"n": 0, "text": "first"}), ("delta", {"n": 1})]
    assert await bus.kept(f"{channel}-other") == []
    await bus.forget(channel)
    assert await bus.kept(channel) == []
