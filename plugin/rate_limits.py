"""Rate limits per API key and per store, counted in Redis over a sliding window.

Each limit counts requests in fixed windows of `window` seconds and weighs the previous window by
the share of it still inside the sliding window that ends now (a sliding-window counter: two
integers per limit in Redis, not a log of every request). A refused request is not counted, so a
client that waits `Retry-After` seconds gets through.

No request waits for Redis: each process decides from the counts Redis last gave it (every
process's requests) plus what it let through since, and sends its new counts in one round trip
every `flush_seconds` (a Lua script per store adds them and reads the totals back). With R replicas
at a rate of Q requests per second each, a limit can be overrun by about R x Q x `flush_seconds`
requests (a few hundred at 50 ms and thousands of requests per second): limits here stop abuse,
they are not quotas to the request.

API requests count per key (a member token per member) and per store; inbound webhooks per store,
in a budget of their own (platforms send bursts, and a 429 makes them retry later). Operator
routes, health and metrics are not limited. When Redis does not answer, requests go on being let
through (each process counting alone, and forgetting its counts) and the outage is logged: a limit
protects the service, it is no reason to refuse all traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from litestar.exceptions import TooManyRequestsException
from redis.asyncio import Redis
from redis.exceptions import RedisError

from loyalty.stores import Principal
from plugin.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "patron:rl:"
FLUSH_SECONDS = 0.05
TIMEOUT_SECONDS = 1.0
"""Longer than this, Redis counts as not answering."""
PAUSE_SECONDS = 5.0
"""After Redis failed to answer, counts stay in-process this long (then are forgotten)."""
MAX_BUCKETS = 100_000

# KEYS: per limit, the counter of the current window, then the previous window's.
# ARGV: the counters' TTL, then what to add to each current counter, in KEYS order.
# Returns each limit's current and previous counts, in KEYS order.
_SCRIPT = """
local counts = {}
for i = 1, #KEYS, 2 do
    local added = tonumber(ARGV[1 + (i + 1) / 2])
    local current = tonumber(redis.call('GET', KEYS[i])) or 0
    if added > 0 then
        current = redis.call('INCRBY', KEYS[i], added)
        if current == added then
            redis.call('EXPIRE', KEYS[i], ARGV[1])
        end
    end
    counts[#counts + 1] = current
    counts[#counts + 1] = tonumber(redis.call('GET', KEYS[i + 1])) or 0
end
return counts
"""


class RateLimited(TooManyRequestsException):
    """429 problem+json with `Retry-After` (whole seconds)."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail=detail, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


def seconds_until_under(limit: int, current: int, previous: int, elapsed: float, window: float) -> float:
    """How long until `current + previous * (share of the previous window still inside)` drops
    below `limit`, `elapsed` (0 to 1) of the current window having passed."""
    if current < limit and previous:
        # The previous window's share shrinks as this one goes on.
        return max(1 - (limit - current) / previous - elapsed, 0) * window
    # This window alone is at the limit: it must become the previous one, then shrink enough.
    return (1 - elapsed + 1 - limit / current) * window


class _Bucket:
    """One limit of one key or store, as this process knows it."""

    __slots__ = ("current", "pending", "previous", "sending", "window")

    def __init__(self) -> None:
        self.window = -2
        """The window Redis's counts below are of."""
        self.current = 0
        self.previous = 0
        self.pending = 0
        """Requests let through here that Redis has not been told of."""
        self.sending = 0
        """Requests let through here that Redis is being told of (not in `current` yet)."""

    def counts(self, window: int) -> tuple[int, int]:
        """(current, previous) in `window`: Redis's last counts moved on to it, and ours since."""
        ours = self.pending + self.sending
        if window == self.window:
            return self.current + ours, self.previous
        if window == self.window + 1:
            return ours, self.current
        return ours, 0


Limit = tuple[str, str, int]
"""(what it limits, for the message; its bucket within the store; requests per window)."""


class RateLimiter:
    """Checks a request against its limits (a limit of 0 is off) and counts it."""

    def __init__(
        self,
        redis: Redis,
        *,
        window: float,
        per_key: int,
        per_store: int,
        webhooks_per_store: int,
        clock: Callable[[], float] = time.time,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self._redis = redis
        self._script = redis.register_script(_SCRIPT)
        self._window = window
        self._ttl = math.ceil(2 * window) + 1
        self._per_key = per_key
        self._per_store = per_store
        self._webhooks_per_store = webhooks_per_store
        self._clock = clock
        self._flush_seconds = flush_seconds
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._paused_until = 0.0

    def check(self, principal: Principal) -> None:
        """Count an API request against its key (or member) and its store; `RateLimited` when over."""
        who = principal.key_id if principal.customer_id is None else f"m:{principal.customer_id}"
        self._count(
            principal.store_id,
            (("this key", f"k:{who}", self._per_key), ("this store", "s", self._per_store)),
        )

    def check_webhook(self, store_id: str) -> None:
        """Count an inbound webhook against its store's webhook budget; `RateLimited` when over."""
        self._count(store_id, (("this store's webhooks", "h", self._webhooks_per_store),))

    def _window_at(self, now: float) -> tuple[int, float]:
        index, into = divmod(now, self._window)
        return int(index), into / self._window

    def _count(self, store_id: str, limits: Sequence[Limit]) -> None:
        window, elapsed = self._window_at(self._clock())
        counted: list[_Bucket] = []
        for name, bucket_id, limit in limits:
            if limit <= 0:
                continue
            bucket = self._buckets.get((store_id, bucket_id))
            if bucket is None:
                bucket = self._buckets[store_id, bucket_id] = _Bucket()
            current, previous = bucket.counts(window)
            if current + previous * (1 - elapsed) >= limit:
                wait = seconds_until_under(limit, current, previous, elapsed, self._window)
                raise RateLimited(
                    f"rate limit of {limit} requests per {self._window:g} s for {name} reached",
                    # Whole seconds, strictly after the moment the count drops below the limit
                    # (which is still refused), whatever the floating point made of that moment.
                    retry_after=math.floor(wait + 1e-6) + 1,
                )
            counted.append(bucket)
        for bucket in counted:
            bucket.pending += 1
        if counted and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        try:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()
        finally:
            self._flusher = None

    async def flush(self) -> None:
        """Tell Redis what this process let through, and learn every process's counts."""
        taken = [(key, bucket, bucket.pending) for key, bucket in self._buckets.items() if bucket.pending]
        for _, bucket, pending in taken:
            bucket.pending -= pending
            bucket.sending += pending
        try:
            if taken and time.monotonic() >= self._paused_until:
                await self._send(taken)
        finally:
            for _, bucket, pending in taken:
                bucket.sending -= pending
        self._forget_old()

    async def _send(self, taken: list[tuple[tuple[str, str], _Bucket, int]]) -> None:
        window, _ = self._window_at(self._clock())
        by_store: defaultdict[str, list[tuple[_Bucket, str, int]]] = defaultdict(list)
        for (store_id, bucket_id), bucket, pending in taken:
            by_store[store_id].append((bucket, bucket_id, pending))
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS), self._redis.pipeline(transaction=False) as pipe:
                for store_id, counted in by_store.items():
                    # One hash tag per store: its counters share a Redis Cluster slot, as a script needs.
                    keys: list[str] = []
                    for _, bucket_id, _ in counted:
                        base = f"{PREFIX}{{{store_id}}}:{bucket_id}:"
                        keys += (f"{base}{window}", f"{base}{window - 1}")
                    args = [self._ttl, *(pending for *_, pending in counted)]
                    await self._script(keys=keys, args=args, client=pipe)
                results = await pipe.execute()
        except (RedisError, OSError, TimeoutError):
            self._paused_until = time.monotonic() + PAUSE_SECONDS
            log.warning(
                "rate limits counted in-process for %.0f s: Redis did not answer",
                PAUSE_SECONDS,
                exc_info=True,
            )
            return
        for counted, counts in zip(by_store.values(), results, strict=True):
            for (bucket, _, _), current, previous in zip(counted, counts[::2], counts[1::2], strict=True):
                bucket.window, bucket.current, bucket.previous = window, int(current), int(previous)

    def _forget_old(self) -> None:
        if len(self._buckets) <= MAX_BUCKETS:
            return
        # Buckets of keys not seen for two windows count nothing any more; then the oldest go.
        window, _ = self._window_at(self._clock())
        for key in [k for k, b in self._buckets.items() if b.window < window - 1 and not b.pending]:
            del self._buckets[key]
        while len(self._buckets) > MAX_BUCKETS:
            del self._buckets[next(iter(self._buckets))]

    async def aclose(self) -> None:
        """Send what is still counted here (on shutdown)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()


def rate_limiter(redis: Redis, settings: Settings) -> RateLimiter:
    """The limits `settings` configure."""
    return RateLimiter(
        redis,
        window=settings.rate_limit_window_seconds,
        per_key=settings.rate_limit_per_key,
        per_store=settings.rate_limit_per_store,
        webhooks_per_store=settings.rate_limit_webhooks_per_store,
    )
