"""Metrics: every family is served at `/metrics` and moves when its event happens.

Counters are process-wide and the suite shares one app, so each test compares a scrape before the
event with one after it. The database gauges are read at scrape time: they follow the rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from hooks.pump import DeliveryPump
from loyalty.program import encode
from loyalty.stores import StoreCreated
from plugin import care_jobs, ledger_jobs, outbound
from plugin.metrics import MetricsMiddleware, database_gauges
from plugin.repository.jobs import Job
from plugin.request_bodies import WEBHOOK_MAX_BODY_BYTES as MAX_WEBHOOK_BYTES
from plugin.runtime import Runtime
from recommender import repository as recommender_repo
from tests.events import make_customer, make_line, make_order, send, signed_headers
from tests.hooks.outbound import Clock, emit, forget_endpoints, register, settle
from tests.hooks.platforms import fixture_bytes, make_platform_store, send_shopify, send_woo
from tests.loyalty.care_rows import care_member, care_program, insert_lot
from tests.members import new_member
from tests.metrics import Scrape, scrape
from tests.receiver import OK, Answer, Receiver, Request
from tests.service import key, member_token

Client = httpx.AsyncClient


@get("/things/{thing_id:int}", sync_to_thread=False)
def thing(thing_id: FromPath[int]) -> dict[str, int]:
    if thing_id == 0:
        raise RuntimeError("boom")
    return {"id": thing_id}


def _sample(name: str, status: int) -> float:
    labels = {
        "method": "GET",
        "path": "/things/{thing_id}",
        "status_code": str(status),
        "app_name": "patron",
    }
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_requests_are_counted_by_route_template_and_status() -> None:
    before_ok, before_error = (
        _sample("patron_requests_total", 200),
        _sample("patron_requests_error_total", 500),
    )
    app = Litestar([thing], middleware=[MetricsMiddleware])
    async with AsyncTestClient(app) as client:
        for thing_id in (1, 2, 0):
            await client.get(f"/things/{thing_id}")
    assert _sample("patron_requests_total", 200) == before_ok + 2
    assert _sample("patron_requests_total", 500) >= 1
    assert _sample("patron_requests_error_total", 500) == before_error + 1
    assert _sample("patron_request_duration_seconds_count", 200) == before_ok + 2


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def webhooks(platform: str, outcome: str, reason: str = "") -> dict[str, str]:
    return {"platform": platform, "outcome": outcome, "reason": reason}


class TestWebhooks:
    async def test_standard_outcomes_and_rejections(self, client: Client, store: StoreCreated) -> None:
        before = await scrape(client)
        order = make_order()
        for expected in ("applied", "duplicate"):
            response = await send(client, store, "order.paid", order, event_id="evt-m1")
            assert response.json() == {"status": expected}
        refund = {"order_id": "not-yet", "refund_id": "r1", "amount": 100}
        assert (await send(client, store, "order.refunded", refund)).json() == {"status": "parked"}
        body = b'{"type": "order.paid", "data": {}}'
        forged = signed_headers("whsec_" + "QUJD" * 8, body)
        response = await client.post(f"/v1/hooks/standard/{store.store_id}", content=body, headers=forged)
        assert response.status_code == 401
        unknown = await client.post("/v1/hooks/standard/st_nope", content=body, headers=forged)
        assert unknown.status_code == 404
        huge = b"x" * (MAX_WEBHOOK_BYTES + 1)
        too_large = await client.post(f"/v1/hooks/standard/{store.store_id}", content=huge, headers=forged)
        assert too_large.status_code == 413
        after = await scrape(client)

        name = "patron_webhooks_total"
        assert moved(before, after, name, **webhooks("standard", "applied")) == 1
        assert moved(before, after, name, **webhooks("standard", "duplicate")) == 1
        assert moved(before, after, name, **webhooks("standard", "parked")) == 1
        assert moved(before, after, name, **webhooks("standard", "rejected", "invalid-signature")) == 1
        assert moved(before, after, name, **webhooks("standard", "rejected", "not-found")) == 1
        assert moved(before, after, name, **webhooks("standard", "rejected", "too-large")) == 1
        assert moved(before, after, name, **webhooks("shopify", "applied")) == 0

    async def test_platforms_are_told_apart(self, client: Client) -> None:
        shop = await make_platform_store(client)
        before = await scrape(client)
        paid = fixture_bytes("shopify", "orders_paid")
        assert (await send_shopify(client, shop, "orders/paid", paid)).json() == {"status": "applied"}
        ignored = await send_shopify(client, shop, "app/uninstalled", {"id": 1})
        assert ignored.json() == {"status": "ignored"}
        tampered = await send_shopify(client, shop, "orders/paid", paid, secret="wrong")
        assert tampered.status_code == 401
        ping = await client.post(
            f"/v1/hooks/woocommerce/{shop.store_id}",
            content=b"webhook_id=12",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert ping.json() == {"status": "ignored"}
        no_topic = await send_woo(
            client, shop, "order.updated", {"id": 1}, headers={"X-WC-Webhook-Topic": ""}
        )
        assert no_topic.status_code == 400
        after = await scrape(client)

        name = "patron_webhooks_total"
        assert moved(before, after, name, **webhooks("shopify", "applied")) == 1
        assert moved(before, after, name, **webhooks("shopify", "ignored")) == 1
        assert moved(before, after, name, **webhooks("shopify", "rejected", "invalid-signature")) == 1
        assert moved(before, after, name, **webhooks("woocommerce", "ignored")) == 1
        assert moved(before, after, name, **webhooks("woocommerce", "rejected", "malformed")) == 1
        assert moved(before, after, name, **webhooks("standard", "applied")) == 0


async def test_ledger_entries_are_counted_by_kind(
    client: Client, runtime: Runtime, store: StoreCreated
) -> None:
    before = await scrape(client)
    customer = make_customer()
    order = make_order(customer=customer, lines=[make_line(unit_price=100_000)])
    await send(client, store, "order.paid", order)  # earn
    refund = {"order_id": order["order_id"], "refund_id": "r", "amount": 100}
    await send(client, store, "order.refunded", refund)  # reverse
    cid = customer["customer_id"]
    marketer = key(store, "marketer")
    adjusted = await client.post(
        f"/v1/members/{cid}/adjustments", json={"points": 5, "reason": "sorry"}, headers=marketer
    )
    assert adjusted.status_code == 201, adjusted.text
    token = await member_token(client, store, cid)
    redeemed = await client.post(
        f"/v1/members/{cid}/redemptions",
        json={"reward_id": "voucher-5"},
        headers=token | {"Idempotency-Key": "metrics"},
    )
    assert redeemed.status_code == 201, redeemed.text
    yesterday = datetime.now(UTC) - timedelta(days=1)
    async with runtime.pool.acquire() as conn:
        await insert_lot(conn, store.store_id, cid, points=7, expires_at=yesterday)
    sid = store.store_id
    job = Job(job_id=0, kind=ledger_jobs.EXPIRE, store_id=sid, payload={}, attempts=1, max_attempts=1)
    await ledger_jobs.expire_points(runtime, job)
    after = await scrape(client)

    name = "patron_ledger_entries_total"
    for kind in ("earn", "reverse", "adjust", "redeem", "expire"):
        assert moved(before, after, name, kind=kind) == 1, kind


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    def answer(request: Request) -> Answer:
        return OK if request.path == "/ok" else Answer(status=503)

    async with Receiver(answer) as receiver:
        yield receiver


@pytest.fixture
async def pump(runtime: Runtime, store: StoreCreated) -> AsyncIterator[tuple[DeliveryPump, Clock]]:
    """The worker's pump as `plugin.outbound` builds it (so its attempts are counted), on a test clock."""
    clock = Clock()
    made = outbound.delivery_pump(
        runtime,
        retry_schedule=(1, 2),
        allow_private=True,
        clock=clock,
        timeout=2.0,
        lease_seconds=30.0,
        poll_seconds=0.2,
        grace_seconds=0.5,
    )
    yield made, clock
    await made.aclose()
    await forget_endpoints(runtime, store)


async def test_outbox_backlog_lag_and_delivery_attempts(
    client: Client,
    runtime: Runtime,
    store: StoreCreated,
    receiver: Receiver,
    pump: tuple[DeliveryPump, Clock],
) -> None:
    deliveries, clock = pump
    await register(runtime, store, receiver.url("ok"))
    await register(runtime, store, receiver.url("bad"))
    before = await scrape(client)
    await emit(runtime, store, "c1", 1)
    emitted = await scrape(client)
    assert moved(before, emitted, "patron_outbox_pending") == 1
    assert emitted.value("patron_outbox_lag_seconds") >= 0
    an_hour_on = dataclasses.replace(runtime, clock=lambda: datetime.now(UTC) + timedelta(hours=1))
    [lag] = [m for m in await database_gauges(an_hour_on) if m.name == "patron_outbox_lag_seconds"]
    assert lag.samples[0].value >= 3600

    await deliveries.run_once()  # fans everything out; /ok is delivered, /bad fails
    tried = await scrape(client)
    assert tried.value("patron_outbox_pending") == 0
    # The gauge counts every store's deliveries, and other tests' stores may settle meanwhile: this
    # store's failed delivery shows as a rise of at least one, and its settling as a fall.
    assert moved(before, tried, "patron_deliveries_waiting", status="failed") >= 1
    attempts = "patron_delivery_attempts_total"
    assert moved(before, tried, attempts, outcome="delivered", status_class="2xx") == 1
    assert moved(before, tried, attempts, outcome="retry", status_class="5xx") == 1

    await settle(deliveries, clock, runtime, store)
    after = await scrape(client)
    assert moved(tried, after, "patron_deliveries_waiting", status="failed") <= -1
    assert moved(before, after, attempts, outcome="retry", status_class="5xx") == 2
    assert moved(before, after, attempts, outcome="dead", status_class="5xx") == 1


async def test_care_actions_and_budget_use(client: Client, runtime: Runtime, store: StoreCreated) -> None:
    sid = store.store_id
    marketer = key(store, "marketer")
    current = await client.get("/v1/program", headers=marketer)
    program = care_program({"kind": "birthday", "gift": {"kind": "voucher", "value": 700}})
    published = await client.put(
        "/v1/program",
        content=encode(program),
        headers=marketer | {"If-Match": current.headers["ETag"], "Content-Type": "application/json"},
    )
    assert published.status_code == 200, published.text
    today = runtime.clock().astimezone(ZoneInfo("Europe/Berlin")).date()
    async with runtime.pool.acquire() as conn:
        for cid in ("ann", "bob"):
            await care_member(conn, sid, cid, birthday=today.replace(year=1992))
    before = await scrape(client)
    assert before.value("patron_care_gift_budget", store=sid) == 100_000
    assert before.value("patron_care_gift_budget_used", store=sid) == 0

    await care_jobs.scan_store(runtime, store_id=sid)
    after = await scrape(client)
    assert moved(before, after, "patron_care_actions_total", trigger="birthday", kind="gift") == 2
    assert after.value("patron_care_gift_budget_used", store=sid) == 1400


async def test_model_version_and_age(client: Client, runtime: Runtime, store: StoreCreated) -> None:
    sid = store.store_id
    assert ("patron_model_version", frozenset({("store", sid)})) not in (await scrape(client)).samples
    now = runtime.clock()
    async with runtime.pool.acquire() as conn, conn.transaction():
        model = recommender_repo.NewModel(
            store_id=sid,
            window_start=now - timedelta(days=365),
            window_end=now,
            hyper={},
            metrics={},
            members=1,
            products=1,
            interactions=1,
            arrays=b"",
        )
        for _ in range(2):
            version = await recommender_repo.insert_model(conn, model)
        await recommender_repo.set_live(conn, store_id=sid, version=version)
        await conn.execute(
            "UPDATE recommender_models SET trained_at = $2 WHERE store_id = $1",
            sid,
            now - timedelta(days=2),
        )
    after = await scrape(client)
    assert after.value("patron_model_version", store=sid) == 2
    assert 2 * 86400 <= after.value("patron_model_age_seconds", store=sid) < 2 * 86400 + 600


async def test_cache_reads(client: Client, store: StoreCreated) -> None:
    cid = await new_member(client, store, points=10)
    channel = key(store, "channel")
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get(f"/v1/members/{cid}", headers=channel)).status_code == 200
    marketer = key(store, "marketer")
    await client.post(f"/v1/members/{cid}/adjustments", json={"points": 1, "reason": "x"}, headers=marketer)
    assert (await client.get(f"/v1/members/{cid}", headers=channel)).status_code == 200
    listed = await client.get(f"/v1/members/{cid}/recommendations", headers=channel)
    assert listed.json()["model_version"] is None
    after = await scrape(client)

    name = "patron_cache_reads_total"
    assert moved(before, after, name, cache="profile", result="miss") == 1
    assert moved(before, after, name, cache="profile", result="hit") == 2
    assert moved(before, after, name, cache="profile", result="stale") == 1
    assert moved(before, after, name, cache="recommendations", result="empty") == 1
