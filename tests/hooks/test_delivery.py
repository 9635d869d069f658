"""Outbound delivery against a real HTTP receiver: signing, retries, dead letters, ordering, leases."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from hooks import deliveries
from hooks.repository import endpoints as endpoints_repo
from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from tests.events import make_order, send
from tests.hooks.outbound import (
    Clock,
    PumpFactory,
    deliveries_of,
    emit,
    register,
    settle,
)
from tests.receiver import OK, Answer, Receiver, Request


def seq(request: Request) -> int:
    return int(request.json()["data"]["seq"])


class TestSigned:
    async def test_signature_verifies_with_the_endpoint_secret(
        self, runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory
    ) -> None:
        endpoint = await register(runtime, store, receiver.url())
        await emit(runtime, store, "c1", 1)
        assert await pumps().run_once() == 1
        [request] = receiver.requests
        [row] = await deliveries_of(runtime, store)
        assert request.verify(endpoint.secret) == row.message_id
        body = request.json()
        assert body["type"] == "points.changed"
        assert body["timestamp"].endswith("Z")
        assert body["data"] == {"store_id": store.store_id, "customer_id": "c1", "seq": 1}
        assert row.status == "delivered"
        async with runtime.pool.acquire() as conn:
            detail = await deliveries.get(conn, store_id=store.store_id, delivery_id=f"dlv_{row.delivery_id}")
        [attempt] = detail.attempts
        assert attempt.status_code == 200
        assert attempt.error is None
        assert attempt.latency_ms >= 0

    async def test_an_order_reaches_the_storefront(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        store: StoreCreated,
        receiver: Receiver,
        pumps: PumpFactory,
    ) -> None:
        await register(runtime, store, receiver.url())
        order = make_order()
        assert (await send(client, store, "order.paid", order)).status_code == 200
        await pumps().run_once()
        [request] = receiver.requests
        data = request.json()["data"]
        assert data["customer_id"] == order["customer"]["customer_id"]
        assert data["delta"] > 0

    async def test_only_subscribed_enabled_endpoints_get_deliveries(
        self, runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory
    ) -> None:
        points = await register(runtime, store, receiver.url("points"))
        await register(runtime, store, receiver.url("tiers"), events=["tier.changed"])
        paused = await register(runtime, store, receiver.url("paused"))
        async with runtime.pool.acquire() as conn:
            await endpoints_repo.disable(conn, endpoint_id=paused.endpoint_id, reason="test")
        await emit(runtime, store, "c1", 1)
        await pumps().run_once()
        assert [row.endpoint_id for row in await deliveries_of(runtime, store)] == [points.endpoint_id]
        assert [request.path for request in receiver.requests] == ["/points"]


class TestRetries:
    async def test_receiver_down_then_up_is_retried_then_delivered(
        self, runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory, clock: Clock
    ) -> None:
        endpoint = await register(runtime, store, receiver.url())
        await receiver.stop()
        await emit(runtime, store, "c1", 1)
        pump = pumps()
        await pump.run_once()
        [row] = await deliveries_of(runtime, store)
        assert row.status == "failed"
        assert row.last_status_code is None
        assert row.last_error
        assert 0.9 <= (row.next_attempt_at - clock()).total_seconds() <= 1.1
        await receiver.start()
        assert await pump.run_once() == 0, "not due before its retry time"
        clock.advance(1.2)
        assert await pump.run_once() == 1
        [row] = await deliveries_of(runtime, store)
        assert row.status == "delivered"
        [request] = receiver.requests
        assert request.verify(endpoint.secret) == row.message_id

    async def test_down_for_good_dead_letters_then_replay_succeeds(
        self, runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory, clock: Clock
    ) -> None:
        await register(runtime, store, receiver.url())
        receiver.behaviour = lambda _: Answer(status=503)
        await emit(runtime, store, "c1", 1)
        pump = pumps()
        await settle(pump, clock, runtime, store)
        [row] = await deliveries_of(runtime, store)
        assert (row.status, row.attempts, row.last_status_code) == ("dead", 3, 503)
        receiver.behaviour = lambda _: OK
        async with runtime.pool.acquire() as conn:
            await deliveries.replay(
                conn, store_id=store.store_id, delivery_id=f"dlv_{row.delivery_id}", now=clock()
            )
        await pump.run_once()
        async with runtime.pool.acquire() as conn:
            detail = await deliveries.get(conn, store_id=store.store_id, delivery_id=f"dlv_{row.delivery_id}")
        assert detail.status == "delivered"
        assert [(a.series, a.attempt, a.status_code) for a in detail.attempts] == [
            (1, 1, 503),
            (1, 2, 503),
            (1, 3, 503),
            (2, 1, 200),
        ]
        assert {request.message_id for request in receiver.requests} == {row.message_id}

    async def test_retry_after_longer_than_the_schedule_is_honoured(
        self, runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory, clock: Clock
    ) -> None:
        await register(runtime, store, receiver.url())
        receiver.behaviour = lambda _: Answer(status=429, headers={"Retry-After": "120"})
        await emit(runtime, store, "c1", 1)
        pump = pumps()
        await pump.run_once()
        [row] = await deliveries_of(runtime, store)
        assert (row.next_attempt_at - clock()).total_seconds() == pytest.approx(120, abs=1)
        clock.advance(60)
        assert await pump.run_once() == 0
        clock.advance(61)
        assert await pump.run_once() == 1

    async def test_410_dead_letters_and_disables_the_endpoint(
        self, runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory
    ) -> None:
        endpoint = await register(runtime, store, receiver.url())
        receiver.behaviour = lambda _: Answer(status=410)
        await emit(runtime, store, "c1", 1)
        pump = pumps()
        await pump.run_once()
        [row] = await deliveries_of(runtime, store)
        assert (row.status, row.attempts) == ("dead", 1)
        async with runtime.pool.acquire() as conn:
            stored = await endpoints_repo.get(conn, store_id=store.store_id, endpoint_id=endpoint.endpoint_id)
        assert stored is not None
        assert not stored.enabled
        assert stored.disabled_reason is not None
        await emit(runtime, store, "c1", 2)
        await pump.run_once()
        assert len(await deliveries_of(runtime, store)) == 1, "a disabled endpoint gets nothing new"

    async def test_a_private_target_is_refused_at_delivery_time(
        self, runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory
    ) -> None:
        # Registered when private targets were allowed, or its DNS changed since: checked again.
        await register(runtime, store, receiver.url())
        await emit(runtime, store, "c1", 1)
        await pumps(allow_private=False).run_once()
        [row] = await deliveries_of(runtime, store)
        assert row.status == "failed"
        assert row.last_error is not None
        assert "refused" in row.last_error
        assert receiver.requests == []


class TestOrdering:
    @staticmethod
    def assert_in_order(requests: list[Request]) -> None:
        """No message about a member is sent before the earlier ones were acknowledged."""
        delivered: dict[str, set[int]] = {}
        sent: dict[str, set[int]] = {}
        for request in requests:
            member, number = request.json()["data"]["customer_id"], seq(request)
            sent.setdefault(member, set()).add(number)
            earlier = {n for n in sent[member] if n < number}
            assert earlier <= delivered.get(member, set()), f"{member} #{number} sent before {earlier}"
            if request.status == 200:
                delivered.setdefault(member, set()).add(number)

    async def test_per_member_order_holds_under_retries(
        self, runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory, clock: Clock
    ) -> None:
        await register(runtime, store, receiver.url())
        seen: Counter[str] = Counter()

        def flaky(request: Request) -> Answer:
            seen[request.message_id] += 1
            # Some messages fail once or twice before they go through.
            return Answer(status=500) if seen[request.message_id] <= seq(request) % 3 else OK

        receiver.behaviour = flaky
        for number in range(12):
            await emit(runtime, store, f"m{number % 3}", number)
        await settle(pumps(), clock, runtime, store, rounds=40)
        self.assert_in_order(receiver.requests)
        for member in ("m0", "m1", "m2"):
            got = [seq(r) for r in receiver.answered(200) if r.json()["data"]["customer_id"] == member]
            assert got == sorted(got) == [n for n in range(12) if f"m{n % 3}" == member]

    async def test_a_dead_letter_releases_the_queue_behind_it(
        self, runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory, clock: Clock
    ) -> None:
        await register(runtime, store, receiver.url())
        receiver.behaviour = lambda request: Answer(status=500) if seq(request) == 1 else OK
        await emit(runtime, store, "c1", 1)
        await emit(runtime, store, "c1", 2)
        await settle(pumps(), clock, runtime, store)
        assert [(seq(r), r.status) for r in receiver.requests] == [(1, 500), (1, 500), (1, 500), (2, 200)]
        assert [row.status for row in await deliveries_of(runtime, store)] == ["dead", "delivered"]

    async def test_other_members_are_not_held_up_by_one_failing(
        self, runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory
    ) -> None:
        await register(runtime, store, receiver.url())
        receiver.behaviour = lambda request: Answer(status=500) if seq(request) == 1 else OK
        await emit(runtime, store, "c1", 1)
        await emit(runtime, store, "c2", 2)
        await emit(runtime, store, None, 3)
        await pumps().run_once()
        assert sorted((seq(r), r.status) for r in receiver.requests) == [(1, 500), (2, 200), (3, 200)]
