"""Redis as Patron uses it: a cache and a fan-out, never the system of record, so never worth a hang.

The client gives up on a reply after `timeout` seconds and retries once at once (a pooled
connection Redis dropped when it restarted), where redis-py's default waits 5 s per call: a profile
read (a GET, then a SET) waited 10 s on a hung Redis, every time. And after a failure,
`RedisBreaker` skips Redis altogether for `cooldown` seconds, so an outage costs one timeout per
cooldown rather than one per request; callers fall back to PostgreSQL meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

T = TypeVar("T")

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)
"""Errors that mean Redis cannot be reached now (refused, reset, no reply in time)."""


def connect(url: str, *, timeout: float) -> Redis:
    """A client that waits at most `timeout` seconds to connect and for each reply (a pub/sub
    listener waits for messages as long as it likes), retrying once without delay."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=1),
    )


class RedisBreaker:
    """Runs Redis calls unless Redis failed less than `cooldown` seconds ago; a call that fails (or
    is skipped) returns its `default`, so callers only say what to do without Redis."""

    def __init__(self, *, cooldown: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown = cooldown
        self._clock = clock
        self._skip_until = 0.0

    @property
    def available(self) -> bool:
        """False while Redis is being skipped after a failure."""
        return self._clock() >= self._skip_until

    async def call(self, call: Callable[[], Awaitable[T]], default: T) -> T:
        if not self.available:
            return default
        try:
            return await call()
        except UNAVAILABLE as exc:
            if self.available:  # the first to fail says so; the rest of a burst stays quiet
                log.warning(
                    "Redis unavailable (%s: %s); using PostgreSQL alone for now", type(exc).__name__, exc
                )
            self._skip_until = self._clock() + self._cooldown
            return default


async def follow_channel(
    redis: Redis,
    channel: str,
    *,
    on_message: Callable[[bytes], None],
    on_gap: Callable[[], None],
    what: str,
    listening: asyncio.Event | None = None,
) -> None:
    """Call `on_message` with every message published on `channel`, until cancelled. Pub/sub keeps
    nothing for a listener that was away, so `on_gap` is called whenever messages may have been
    missed: on subscribing, and on losing Redis (retried every second). `listening` is set while
    subscribed."""
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                on_gap()
                if listening is not None:
                    listening.set()
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        on_message(message["data"])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("lost the %s feed; retrying", what, exc_info=True)
            if listening is not None:
                listening.clear()
            on_gap()
            await asyncio.sleep(1)
