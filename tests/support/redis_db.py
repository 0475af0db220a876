"""A Redis database of a test's own: several test sessions (and several tests) on one machine must not
flush each other's queues or run each other's jobs. The claim is a key in db 0 (SET NX with an
expiry, in case a session dies), released at the end. db 0 itself is never claimed: it is `make
team`'s default and holds the claims."""
from __future__ import annotations

import uuid
from contextlib import contextmanager

import pytest

_CLAIMABLE = tuple(range(1, 16))


@contextmanager
def claim_redis_db(hours: float = 1.0):
    """Yields a flushed database's URL; skips the test without Redis."""
    import redis

    admin = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=2)
    try:
        admin.ping()
    except redis.RedisError as error:
        pytest.skip(f"no Redis on 127.0.0.1:6379: {error}")
    token = uuid.uuid4().hex
    for number in _CLAIMABLE:
        claim = f"understudy:test-claim:db{number}"
        if admin.set(claim, token, nx=True, ex=int(hours * 3600)):
            break
    else:
        pytest.skip("every claimable Redis database is in use by other test sessions")
    url = f"redis://127.0.0.1:6379/{number}"
    redis.Redis.from_url(url).flushdb()
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()
        if admin.get(claim) == token.encode():
            admin.delete(claim)
