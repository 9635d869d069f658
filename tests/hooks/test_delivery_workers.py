"""Delivery with running pumps: several workers, crashes (lapsed leases), slow receivers."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from hooks import outbox
from hooks.pump import DeliveryPump
from hooks.repository import deliveries as repo
from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from tests.conftest import eventually
from tests.events import make_order, send
from tests.hooks.outbound import (
    Clock,
    PumpFactory,
    deliveries_of,
    emit,
    register,
)
from tests.members import new_member
from tests.receiver import OK, Answer, Receiver
from tests.service import key, profile


@contextlib.asynccontextmanager
async def running(*pumps: DeliveryPump) -> AsyncIterator[None]:
    """Pumps running in the background, stopped (and awaited) however the test ends."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(pump.run(stop)) for pump in pumps]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_two_workers_never_deliver_one_message_concurrently(
    runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory
) -> None:
    await register(runtime, store, receiver.url())
    # Slow answers keep each message in flight long enough for a second worker to try to take it, and
    # two slots each mean neither worker can hold every member's queue while the other waits.
    receiver.behaviour = lambda _: Answer(delay=0.02)
    async with running(pumps(concurrency=2), pumps(concurrency=2)):
        for number in range(40):
            await emit(runtime, store, f"m{number % 8}", number)
        await receiver.wait_for(lambda: len(receiver.answered(200)) == 40, timeout=30)
    assert receiver.max_in_flight_per_message == 1
    ids = [request.message_id for request in receiver.requests]
    assert len(ids) == len(set(ids)) == 40, "each message sent once"
    async with runtime.pool.acquire() as conn:
        workers = await conn.fetchval(
            "SELECT count(DISTINCT worker) FROM delivery_attempts a JOIN deliveries d USING (delivery_id)"
            " WHERE d.store_id = $1",
            store.store_id,
        )
    assert workers == 2, "both workers took part"


async def test_a_crashed_workers_lease_lapses_and_the_delivery_is_retried(
    runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory, clock: Clock
) -> None:
    await register(runtime, store, receiver.url())
    await emit(runtime, store, "c1", 1)
    await outbox.fan_out(runtime.pool, now=clock())
    # A worker claims the delivery and dies before sending or recording anything.
    async with runtime.pool.acquire() as conn:
        [lost] = await repo.claim(
            conn, worker="crashed", now=clock(), limit=10, per_endpoint=10, busy={}, lease_seconds=30
        )
    pump = pumps()
    assert await pump.run_once() == 0, "leased to the crashed worker"
    clock.advance(31)
    assert await pump.run_once() == 1
    [row] = await deliveries_of(runtime, store)
    assert (row.status, row.attempts) == ("delivered", 2)
    assert [request.message_id for request in receiver.requests] == [lost.message_id]
    # Were it only slow, its late word changes nothing: the lease is someone else's.
    async with runtime.pool.acquire() as conn:
        late = repo.AttemptRecord(
            delivery_id=lost.delivery_id,
            worker="crashed",
            series=lost.series,
            attempt=lost.attempts,
            started_at=clock(),
            status_code=None,
            latency_ms=30_000,
            error="timed out",
        )
        await repo.settle(conn, attempt=late, status="dead", now=clock())
    [row] = await deliveries_of(runtime, store)
    assert row.status == "delivered"


async def test_a_worker_killed_mid_delivery_loses_nothing(
    runtime: Runtime,
    store: StoreCreated,
    receiver: Receiver,
    pumps: PumpFactory,
    clock: Clock,
    database_url: str,
) -> None:
    await register(runtime, store, receiver.url())
    receiver.behaviour = lambda _: Answer(hang=True)
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.hooks.pump_process", database_url, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert worker.stdout is not None
        assert await asyncio.wait_for(worker.stdout.readline(), 20) == b"ready\n"
        await emit(runtime, store, "c1", 1)
        await receiver.wait_for(lambda: len(receiver.requests) == 1)
    finally:
        worker.kill()  # SIGKILL: no grace, no release, nothing recorded; only its lease is left
        await worker.wait()
    receiver.behaviour = lambda _: OK
    [row] = await deliveries_of(runtime, store)
    assert row.status == "pending"
    assert row.locked_until is not None
    clock.advance(120)  # past its 60 s lease
    await pumps().run_once()
    [row] = await deliveries_of(runtime, store)
    assert row.status == "delivered"
    assert [request.message_id for request in receiver.requests] == [row.message_id] * 2


async def test_a_hanging_receiver_does_not_delay_another_endpoint(
    runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory
) -> None:
    await register(runtime, store, receiver.url("slow"))
    await register(runtime, store, receiver.url("fast"))
    receiver.behaviour = lambda request: Answer(hang=True) if request.path == "/slow" else OK
    # A hanging attempt would hold its slot for the whole 20 s timeout.
    async with running(pumps(concurrency=4, per_endpoint=2, timeout=20.0, lease_seconds=60.0)):
        started = time.monotonic()
        for number in range(10):
            await emit(runtime, store, f"m{number}", number)
        await receiver.wait_for(lambda: len(receiver.answered(200, "fast")) == 10, timeout=15)
        elapsed = time.monotonic() - started
        hanging = [request for request in receiver.requests if request.path == "/slow"]
    assert elapsed < 15, f"fast endpoint waited {elapsed:.1f} s behind the hanging one"
    assert len(hanging) == 2, "the hanging endpoint holds no more than its share of slots"
    # Stopping released the hanging attempts untried: they are due again, not lost.
    rows = [row for row in await deliveries_of(runtime, store) if row.status != "delivered"]
    assert len(rows) == 10
    assert all(row.locked_until is None for row in rows)


async def test_a_lost_listen_connection_is_replaced(
    runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory
) -> None:
    await register(runtime, store, receiver.url())
    pump = pumps()
    async with running(pump):
        await emit(runtime, store, "c1", 1)
        await receiver.wait_for(lambda: len(receiver.answered(200)) == 1)
        assert pump._listener is not None
        lost = pump._listener.get_server_pid()
        async with runtime.pool.acquire() as conn:
            await conn.execute("SELECT pg_terminate_backend($1)", lost)
        await emit(runtime, store, "c1", 2)
        await receiver.wait_for(lambda: len(receiver.answered(200)) == 2)

        # The poll delivered #2, and the pump listens again on another connection (from its next
        # turn: until then it holds the lost one, which asyncpg detached from its proxy).
        async def listening_anew() -> bool:
            try:
                return pump._listener is not None and pump._listener.get_server_pid() != lost
            except asyncpg.InterfaceError:
                return False

        assert await eventually(listening_anew)
        await emit(runtime, store, "c1", 3)
        await receiver.wait_for(lambda: len(receiver.answered(200)) == 3)
    assert pump._listener is None
    assert [request.json()["data"]["seq"] for request in receiver.requests] == [1, 2, 3]


@pytest.mark.slow
async def test_many_messages_many_members_two_workers_in_order(
    runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory
) -> None:
    await register(runtime, store, receiver.url())
    await register(runtime, store, receiver.url("other"))
    async with running(pumps(), pumps()):
        for number in range(600):
            await emit(runtime, store, f"m{number % 50}", number)
        await receiver.wait_for(lambda: len(receiver.answered(200)) == 1200, timeout=60)
    for path in ("/hook", "/other"):
        by_member: dict[str, list[int]] = {}
        for request in receiver.requests:
            if request.path == path:
                body = request.json()["data"]
                by_member.setdefault(body["customer_id"], []).append(body["seq"])
        assert all(seqs == sorted(seqs) for seqs in by_member.values())


async def test_a_hanging_receiver_does_not_slow_webhook_ingestion(
    client: httpx.AsyncClient, runtime: Runtime, store: StoreCreated, receiver: Receiver, pumps: PumpFactory
) -> None:
    """Outbound delivery runs beside the request path: while every attempt hangs (each cut off only
    after 10 s), inbound webhooks, which are what fill the outbox, keep their pace, and so do reads."""
    await register(runtime, store, receiver.url())
    receiver.behaviour = lambda _: Answer(hang=True)

    async def ingest(orders: int) -> list[float]:
        latencies = []
        for _ in range(orders):
            started = time.monotonic()
            response = await send(client, store, "order.paid", make_order())
            latencies.append(time.monotonic() - started)
            assert response.json() == {"status": "applied"}
        return latencies

    cid = await new_member(client, store, points=10)
    before = statistics.median(await ingest(15))
    async with running(pumps(timeout=10.0, lease_seconds=60.0, per_endpoint=4)):
        await receiver.wait_for(lambda: len(receiver.requests) == 4, timeout=10)
        during = await ingest(15)
        started = time.monotonic()
        await profile(client, cid, key(store, "channel"))
        read = time.monotonic() - started
        hanging = len(receiver.requests)
    assert hanging == 4, "the receiver held its share of attempts the whole time"
    assert statistics.median(during) < 2 * before + 0.1, (before, during)
    assert max(during) < 2.0, during
    assert read < 1.0
