"""Rate limits: sliding windows in Redis per key and per store, 429 with Retry-After, failing open."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from redis.asyncio import Redis

from loyalty.stores import Principal, Scope, StoreCreated
from plugin.rate_limits import PREFIX, RateLimited, RateLimiter, seconds_until_under
from plugin.runtime import Runtime
from tests.conftest import ADMIN, bearer, eventually, make_store
from tests.events import make_customer, send

WINDOW = 60.0


class Clock:
    """Wall-clock seconds the test sets; windows start at multiples of `WINDOW`."""

    def __init__(self) -> None:
        self.now = 1_000 * WINDOW

    def __call__(self) -> float:
        return self.now


Make = Callable[..., RateLimiter]


@pytest.fixture
async def make(runtime: Runtime) -> AsyncIterator[Make]:
    """Limiters on the test's Redis (or another), flushed only when the test says, closed after it."""
    made: list[RateLimiter] = []

    def make(clock: Clock, redis: Redis | None = None, **options: float) -> RateLimiter:
        options = {"per_key": 0, "per_store": 0, "webhooks_per_store": 0, "flush_seconds": 3600} | options
        limiter = RateLimiter(redis or runtime.redis, window=WINDOW, clock=clock, **options)  # type: ignore[arg-type]
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


def principal(store_id: str, key_id: str = "key_1", customer_id: str | None = None) -> Principal:
    return Principal(store_id=store_id, scope=Scope.channel, key_id=key_id, customer_id=customer_id)


def passes(limits: RateLimiter, who: Principal) -> bool:
    try:
        limits.check(who)
    except RateLimited:
        return False
    return True


def admitted(limits: RateLimiter, who: Principal, tries: int) -> int:
    return sum(passes(limits, who) for _ in range(tries))


@dataclass
class Metered:
    clock: Clock
    limits: RateLimiter
    me: Principal


@pytest.fixture
def ten(make: Make, store: StoreCreated) -> Metered:
    """A key allowed 10 requests per window, on a clock the test moves."""
    clock = Clock()
    return Metered(clock, make(clock, per_key=10), principal(store.store_id))


class TestSlidingWindow:
    async def test_a_key_gets_its_limit_then_429_with_when_to_retry(
        self, make: Make, store: StoreCreated
    ) -> None:
        limits = make(Clock(), per_key=5)
        me = principal(store.store_id)
        assert admitted(limits, me, 5) == 5
        with pytest.raises(RateLimited) as refused:
            limits.check(me)
        assert refused.value.status_code == 429
        # All five in this window: it must end, and then its weight drop below 1.
        assert refused.value.retry_after == WINDOW + 1
        assert refused.value.headers == {"Retry-After": str(refused.value.retry_after)}

    async def test_refused_requests_are_not_counted(self, ten: Metered) -> None:
        assert admitted(ten.limits, ten.me, 100) == 10
        await ten.limits.flush()
        ten.clock.now += WINDOW * 1.5  # half of the previous window's 10 (not 100) still counts
        assert admitted(ten.limits, ten.me, 10) == 5

    async def test_the_previous_window_counts_for_the_share_still_inside(self, ten: Metered) -> None:
        assert admitted(ten.limits, ten.me, 10) == 10
        await ten.limits.flush()
        ten.clock.now += WINDOW * 1.25  # a quarter into the next window: 75% of the 10 still count
        assert admitted(ten.limits, ten.me, 10) == 3  # 7.5 + 2 < 10, 7.5 + 3 is not
        await ten.limits.flush()
        ten.clock.now += WINDOW * 0.5  # three quarters in: 2.5 of them count, beside this window's 3
        assert admitted(ten.limits, ten.me, 10) == 5

    async def test_retry_after_is_when_a_request_gets_through_again(self, ten: Metered) -> None:
        assert admitted(ten.limits, ten.me, 10) == 10
        await ten.limits.flush()
        ten.clock.now += WINDOW * 1.25
        assert admitted(ten.limits, ten.me, 3) == 3
        with pytest.raises(RateLimited) as refused:
            ten.limits.check(ten.me)
        ten.clock.now += refused.value.retry_after - 1
        assert not passes(ten.limits, ten.me)
        ten.clock.now += 1
        assert passes(ten.limits, ten.me)

    async def test_keys_and_members_have_limits_of_their_own(self, make: Make, store: StoreCreated) -> None:
        limits = make(Clock(), per_key=2)
        callers = [
            principal(store.store_id, "key_a"),
            principal(store.store_id, "key_b"),
            principal(store.store_id, "member-token", customer_id="ann"),
            principal(store.store_id, "member-token", customer_id="bob"),
        ]
        for caller in callers:
            assert admitted(limits, caller, 3) == 2

    async def test_the_store_limit_holds_across_its_keys(self, make: Make, store: StoreCreated) -> None:
        limits = make(Clock(), per_key=3, per_store=5)
        assert admitted(limits, principal(store.store_id, "key_a"), 5) == 3
        assert admitted(limits, principal(store.store_id, "key_b"), 5) == 2
        with pytest.raises(RateLimited, match="for this store reached"):
            limits.check(principal(store.store_id, "key_c"))
        assert admitted(limits, principal(store.store_id + "-other", "key_a"), 5) == 3

    async def test_webhooks_have_a_budget_of_their_own(self, make: Make, store: StoreCreated) -> None:
        limits = make(Clock(), per_store=1, webhooks_per_store=2)
        limits.check_webhook(store.store_id)
        limits.check_webhook(store.store_id)
        with pytest.raises(RateLimited, match="webhooks"):
            limits.check_webhook(store.store_id)
        assert passes(limits, principal(store.store_id))


class TestAcrossProcesses:
    async def test_processes_count_together_through_redis(self, make: Make, store: StoreCreated) -> None:
        clock = Clock()
        one, two = make(clock, per_key=10), make(clock, per_key=10)
        me = principal(store.store_id)
        assert admitted(one, me, 6) == 6
        await one.flush()
        assert passes(two, me)  # before it hears from Redis, a process knows only its own
        await two.flush()  # now it knows of all 7
        assert admitted(two, me, 10) == 3
        await two.flush()
        assert passes(one, me)  # it last heard of 6: it lets an 11th through, and tells Redis
        await one.flush()
        assert not passes(one, me)

    async def test_requests_while_counts_are_on_their_way_still_count(
        self, make: Make, store: StoreCreated, runtime: Runtime
    ) -> None:
        limits = make(Clock(), per_key=3)
        me = principal(store.store_id)
        assert admitted(limits, me, 2) == 2
        await runtime.redis.client_pause(300, all=False)  # Redis holds writes (the count) for 300 ms
        sending = asyncio.create_task(limits.flush())
        await asyncio.sleep(0.1)
        assert not sending.done()
        assert admitted(limits, me, 5) == 1
        await sending
        assert not passes(limits, me)

    async def test_counts_reach_redis_by_themselves(
        self, make: Make, store: StoreCreated, runtime: Runtime
    ) -> None:
        clock = Clock()
        limits = make(clock, per_key=10, flush_seconds=0.01)
        assert admitted(limits, principal(store.store_id), 4) == 4
        counter = f"{PREFIX}{{{store.store_id}}}:k:key_1:{int(clock.now // WINDOW)}"

        async def counted() -> bool:
            return await runtime.redis.get(counter) == b"4"

        assert await eventually(counted)
        assert 0 < await runtime.redis.ttl(counter) <= 2 * WINDOW + 1


def refused_for(limit: int, *, current: int, previous: int, elapsed: float) -> float:
    return seconds_until_under(limit, current, previous, elapsed, WINDOW)


def test_time_until_under_the_limit() -> None:
    assert refused_for(10, current=10, previous=0, elapsed=0.0) == pytest.approx(WINDOW)
    assert refused_for(10, current=10, previous=20, elapsed=0.5) == pytest.approx(WINDOW * 0.5)
    # 4 now and 12 before, a quarter in (4 + 9 = 13): under 10 once less than half of the 12 counts.
    assert refused_for(10, current=4, previous=12, elapsed=0.25) == pytest.approx(WINDOW * 0.25)


async def test_without_redis_requests_go_on_and_the_outage_is_logged(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = Redis(port=1)  # nothing listens there: every command fails to connect
    limits = make(Clock(), unreachable, per_key=3)
    me = principal("st_x")
    with caplog.at_level(logging.WARNING, logger="plugin.rate_limits"):
        for _ in range(3):
            # Each process counts alone between flushes, and forgets what Redis could not take.
            assert admitted(limits, me, 5) == 3
            await limits.flush()
    # One warning for the outage, no attempt per flush while it lasts.
    assert [r.getMessage() for r in caplog.records] == [
        "rate limits counted in-process for 5 s: Redis did not answer"
    ]
    await unreachable.aclose()


@pytest.fixture
async def tight_limits(runtime: Runtime) -> AsyncIterator[None]:
    """The app's limits lowered for one test: 3 requests per key, 4 per store, 2 webhooks per store."""
    kept = runtime.limits
    runtime.limits = RateLimiter(runtime.redis, window=WINDOW, per_key=3, per_store=4, webhooks_per_store=2)
    yield
    await runtime.limits.aclose()
    runtime.limits = kept


@pytest.mark.usefixtures("tight_limits")
class TestOverHttp:
    async def test_429_is_problem_json_with_retry_after(
        self, client: httpx.AsyncClient, store: StoreCreated
    ) -> None:
        headers = bearer(store.api_keys[Scope.channel])
        for _ in range(3):
            assert (await client.get("/v1/me", headers=headers)).status_code == 200
        refused = await client.get("/v1/me", headers=headers)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "urn:patron:problem:rate-limited"
        assert 0 < int(refused.headers["retry-after"]) <= 2 * WINDOW + 1
        # Another key of the store has its own budget, up to the store's.
        other = bearer(store.api_keys[Scope.marketer])
        assert (await client.get("/v1/me", headers=other)).status_code == 200
        assert (await client.get("/v1/me", headers=other)).status_code == 429

    async def test_refused_credentials_spend_no_budget(
        self, client: httpx.AsyncClient, store: StoreCreated
    ) -> None:
        headers = bearer(store.api_keys[Scope.storefront])
        for _ in range(5):
            assert (await client.get("/v1/program", headers=headers)).status_code == 403
        assert (await client.get("/v1/me", headers=headers)).status_code == 200

    async def test_webhooks_are_limited_per_store(
        self, client: httpx.AsyncClient, store: StoreCreated
    ) -> None:
        answers = [
            (await send(client, store, "customer.upserted", make_customer())).status_code for _ in range(3)
        ]
        assert answers == [200, 200, 429]

    async def test_operator_and_health_routes_are_not_limited(self, client: httpx.AsyncClient) -> None:
        for _ in range(5):
            assert (await client.get("/health")).status_code == 200
        stores = [await make_store(client, name=f"Unlimited {n}") for n in range(5)]
        assert len({created.store_id for created in stores}) == 5
        assert (await client.get("/metrics", headers=ADMIN)).status_code == 200
