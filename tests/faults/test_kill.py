"""SIGKILL in the middle of a webhook burst, then a restart: every event acknowledged 2xx is there
exactly once, nothing is half-written, the platform's retries of the rest apply once each, and the
outbox resumes delivering.

`make test-slow` runs it; the figures it prints (with `-s`) are the README's Reliability section's.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import psutil
import pytest

from loyalty.stores import StoreCreated
from plugin import database
from tests.conftest import ADMIN, ADMIN_TOKEN, bearer
from tests.events import make_customer, make_line, make_order, signed_headers
from tests.faults.process import patron_env, patron_serve
from tests.members import check_invariants
from tests.receiver import Answer, Receiver

pytestmark = pytest.mark.slow

EVENTS = 600
MEMBERS = 60
SENDERS = 16
KILL_AT = int(EVENTS * 0.4)
"""Acknowledged events when the server is killed."""
DELIVERED_WITHIN = 150.0
"""Deliveries in flight when the server died stay leased for 60 s; then the new worker sends them."""


class Platform:
    """The storefront platform's side: distinct signed order.paid events sent by concurrent senders,
    and what each one got back."""

    def __init__(self, store: StoreCreated) -> None:
        self.store = store
        customers = [make_customer() for _ in range(MEMBERS)]
        self.orders = [
            make_order(customer=customers[n % MEMBERS], lines=[make_line(unit_price=100 * (1 + n % 50))])
            for n in range(EVENTS)
        ]
        self.bodies = [msgspec.json.encode({"type": "order.paid", "data": order}) for order in self.orders]
        self.acknowledged: set[int] = set()
        self.outcomes: Counter[str] = Counter()
        self.kill_now = asyncio.Event()
        self.stop = asyncio.Event()

    def balances(self) -> dict[str, int]:
        """What each member must hold: 1 point per EUR of every order, once."""
        points: Counter[str] = Counter()
        for order in self.orders:
            points[order["customer"]["customer_id"]] += order["subtotal"] // 100
        return dict(points)

    async def send(self, http: httpx.AsyncClient, events: list[int]) -> None:
        """Send the events (under their stable event ids), `SENDERS` at a time, until all are sent
        or `stop` is set."""
        pending = events[::-1]

        async def sender() -> None:
            while pending and not self.stop.is_set():
                n = pending.pop()
                headers = signed_headers(self.store.webhook_secret, self.bodies[n], event_id=f"evt_{n}")
                try:
                    response = await http.post(
                        f"/v1/hooks/standard/{self.store.store_id}", content=self.bodies[n], headers=headers
                    )
                except httpx.HTTPError as exc:  # the server died with the request
                    self.outcomes[type(exc).__name__] += 1
                    continue
                self.outcomes[response.json().get("status", str(response.status_code))] += 1
                if 200 <= response.status_code < 300:
                    self.acknowledged.add(n)
                    if len(self.acknowledged) >= KILL_AT:
                        self.kill_now.set()

        await asyncio.gather(*(sender() for _ in range(SENDERS)))


async def open_store(http: httpx.AsyncClient, receiver: Receiver) -> tuple[StoreCreated, str]:
    """A store with an endpoint for every `points.changed`; returns the store and the endpoint's secret."""
    created = await http.post(
        "/v1/admin/stores", json={"name": "Kill test", "currency": "EUR"}, headers=ADMIN
    )
    store = msgspec.convert(created.json(), StoreCreated)
    endpoint = await http.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url(), "events": ["points.changed"]},
        headers=bearer(store.api_keys["marketer"]),
    )
    assert endpoint.status_code == 201, endpoint.text
    return store, str(endpoint.json()["secret"])


async def earned_entries(conn: asyncpg.Connection, store_id: str) -> dict[str, int]:
    """Each order of the store with how many earn entries the ledger holds for it."""
    rows = await conn.fetch(
        "SELECT o.order_id, count(e.entry_id) AS entries FROM orders o"
        " LEFT JOIN ledger_entries e ON e.store_id = o.store_id AND e.order_id = o.order_id"
        " AND e.kind = 'earn' WHERE o.store_id = $1 GROUP BY o.order_id",
        store_id,
    )
    return {row["order_id"]: row["entries"] for row in rows}


async def check_whole(conn: asyncpg.Connection, store_id: str) -> None:
    """Nothing half-written: as many inbox rows as orders, earn entries, lots and outbox events
    (each order writes one of each, all or none), and the ledger's invariants hold."""
    counts = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM inbox WHERE store_id = $1 AND event_type = 'order.paid') AS inbox,
               (SELECT count(*) FROM orders WHERE store_id = $1) AS orders,
               (SELECT count(*) FROM ledger_entries WHERE store_id = $1 AND kind = 'earn') AS entries,
               (SELECT count(*) FROM point_lots WHERE store_id = $1) AS lots,
               (SELECT count(*) FROM outbox WHERE store_id = $1 AND event_type = 'points.changed') AS outbox
        """,
        store_id,
    )
    assert len(set(counts.values())) == 1, dict(counts)
    await check_invariants(conn, store_id)


async def delivered(conn: asyncpg.Connection, store_id: str) -> tuple[int, int, set[str]]:
    """(deliveries, delivered, message ids) of the store, once all are delivered or time is up."""
    query = (
        "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'delivered') AS delivered,"
        " array_agg(message_id) AS ids FROM deliveries WHERE store_id = $1"
    )
    deadline = time.monotonic() + DELIVERED_WITHIN
    while True:
        row = await conn.fetchrow(query, store_id)
        if row["delivered"] == EVENTS or time.monotonic() > deadline:
            return row["total"], row["delivered"], set(row["ids"] or [])
        await asyncio.sleep(0.5)


async def test_sigkill_mid_burst_loses_nothing_and_doubles_nothing(
    empty_database_url: str, server_urls: tuple[str, str], tmp_path: Path
) -> None:
    env = patron_env({"database": empty_database_url, "redis": server_urls[1]}, admin_token=ADMIN_TOKEN)
    log = tmp_path / "serve.log"
    figures: dict[str, Any] = {}
    async with Receiver(lambda _: Answer(delay=0.01)) as receiver:
        async with patron_serve(env, log) as first, httpx.AsyncClient(base_url=first.url, timeout=30) as http:
            store, secret = await open_store(http, receiver)
            platform = Platform(store)
            sending = asyncio.create_task(platform.send(http, list(range(EVENTS))))
            await platform.kill_now.wait()
            killed = first.kill()
            platform.stop.set()
            await sending
            await first.process.wait()
        # SIGKILL is delivered at once but a process takes a moment to die: give them a few seconds.
        _, alive = psutil.wait_procs(
            [psutil.Process(pid) for pid in killed if psutil.pid_exists(pid)], timeout=5
        )
        assert not [process.pid for process in alive if process.status() != psutil.STATUS_ZOMBIE]
        acknowledged = set(platform.acknowledged)
        figures["sent before the kill"] = sum(platform.outcomes.values())
        figures["answers before the kill"] = dict(platform.outcomes)

        conn = await database.connect(empty_database_url)
        try:
            entries = await earned_entries(conn, store.store_id)
            await check_whole(conn, store.store_id)
        finally:
            await conn.close()
        # Every acknowledged event is there, once; one in flight may have committed unanswered.
        assert {platform.orders[n]["order_id"] for n in acknowledged} <= set(entries)
        assert set(entries.values()) == {1}
        figures["orders in the database after the kill"] = len(entries)

        async with (
            patron_serve(env, log) as second,
            httpx.AsyncClient(base_url=second.url, timeout=30) as http,
        ):
            # The platform retries what got no 2xx, and resends some that did, to be sure.
            platform.outcomes.clear()
            platform.stop.clear()
            resent = sorted(acknowledged)[:100]
            await platform.send(http, [n for n in range(EVENTS) if n not in acknowledged] + resent)
            assert platform.acknowledged == set(range(EVENTS))
            figures["answers to the retries"] = dict(platform.outcomes)
            conn = await database.connect(empty_database_url)
            try:
                entries = await earned_entries(conn, store.store_id)
                await check_whole(conn, store.store_id)
                balances = await conn.fetch(
                    "SELECT customer_id, balance FROM members WHERE store_id = $1", store.store_id
                )
                # The outbox resumes: every event is delivered, those the dead worker held included.
                total, sent, message_ids = await delivered(conn, store.store_id)
            finally:
                await conn.close()
    assert len(entries) == EVENTS
    assert set(entries.values()) == {1}
    assert {row["customer_id"]: row["balance"] for row in balances} == platform.balances()
    assert (total, sent) == (EVENTS, EVENTS)
    received = Counter(request.message_id for request in receiver.answered(200))
    assert set(received) == message_ids
    receiver.answered(200)[0].verify(secret)
    figures["orders applied in the end"] = len(entries)
    figures["deliveries delivered"] = sent
    figures["messages received twice (at least once)"] = sum(1 for count in received.values() if count > 1)
    print("\nkill test:", msgspec.json.encode(figures).decode())
