"""The Redis breaker: a failure skips Redis for the cooldown, then Redis is tried again."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from plugin.redis_link import RedisBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_failure_skips_redis_for_the_cooldown() -> None:
    clock = Clock()
    breaker = RedisBreaker(cooldown=2.0, clock=clock)
    calls: list[str] = []

    async def down() -> str:
        calls.append("down")
        raise RedisConnectionError("refused")

    async def up() -> str:
        calls.append("up")
        return "value"

    assert await breaker.call(down, default="fallback") == "fallback"
    assert not breaker.available
    clock.now += 1.9
    assert await breaker.call(up, default="fallback") == "fallback"
    assert calls == ["down"], "skipped while cooling down"
    clock.now += 0.2
    assert await breaker.call(up, default="fallback") == "value"
    assert breaker.available


async def test_other_errors_are_not_an_outage() -> None:
    breaker = RedisBreaker()

    async def wrong() -> None:
        raise ResponseError("WRONGTYPE")

    with pytest.raises(ResponseError):
        await breaker.call(wrong, default=None)
    assert breaker.available
