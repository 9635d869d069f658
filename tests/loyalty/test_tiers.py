"""Tier rules: the pure reference, and the set-based SQL held to it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest

from loyalty import programs
from loyalty.program import Level, Program, default_program
from loyalty.repository import Connection
from loyalty.stores import StoreCreated
from loyalty.tiers import evaluate, progress, target_level
from tests.conftest import eventually
from tests.sql_rows import insert_member, insert_order, tier_of

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def make_program(**tiers: object) -> Program:
    """The default program (member 0, silver 50000, gold 150000) with tier settings overridden."""
    program = default_program()
    return msgspec.structs.replace(program, version=1, tiers=msgspec.structs.replace(program.tiers, **tiers))


async def reevaluate(conn: Connection, store_id: str, program: Program, now: datetime = NOW) -> list[str]:
    """A store-wide pass; the level changes it recorded, as `customer:from>to`."""
    count = await programs.reevaluate_store(conn, store_id=store_id, program=program, now=now, reason="test")
    rows = await conn.fetch(
        """SELECT customer_id, from_tier, to_tier FROM tier_changes
           WHERE store_id = $1 AND created_at = $2 ORDER BY customer_id""",
        store_id,
        now,
    )
    assert len(rows) == count
    return [f"{r['customer_id']}:{r['from_tier']}>{r['to_tier']}" for r in rows]


class TestPureRules:
    def test_target_level_is_the_highest_reached(self) -> None:
        program = make_program()
        assert [target_level(program, m).code for m in (0, 49_999, 50_000, 149_999, 10**9)] == [
            "member",
            "member",
            "silver",
            "silver",
            "gold",
        ]

    def test_upgrade_is_immediate(self) -> None:
        result = evaluate(make_program(), tier_code="member", below_since=None, metric=60_000, now=NOW)
        assert (result.tier_code, result.below_since, result.transition) == ("silver", None, "upgrade")

    def test_below_starts_the_grace_then_downgrades(self) -> None:
        program = make_program(downgrade_grace_days=30)
        first = evaluate(program, tier_code="gold", below_since=None, metric=0, now=NOW)
        assert (first.tier_code, first.below_since, first.transition) == ("gold", NOW, None)
        during = evaluate(program, tier_code="gold", below_since=NOW, metric=0, now=NOW + 29 * DAY)
        assert (during.tier_code, during.below_since) == ("gold", NOW)
        after = evaluate(program, tier_code="gold", below_since=NOW, metric=60_000, now=NOW + 30 * DAY)
        assert (after.tier_code, after.below_since, after.transition) == (
            "silver",
            None,
            "downgrade after grace",
        )

    def test_recovery_clears_below_since(self) -> None:
        result = evaluate(make_program(), tier_code="silver", below_since=NOW, metric=50_000, now=NOW + DAY)
        assert (result.tier_code, result.below_since, result.transition) == ("silver", None, None)

    def test_removed_level_maps_at_once(self) -> None:
        result = evaluate(make_program(), tier_code="platinum", below_since=NOW, metric=0, now=NOW)
        assert (result.tier_code, result.below_since, result.transition) == ("member", None, "tier removed")

    def test_progress_to_the_next_level(self) -> None:
        program = make_program()
        assert progress(program, tier_code="member", metric=20_000).needed == 30_000
        top = progress(program, tier_code="gold", metric=200_000)
        assert (top.next, top.needed) == (None, 0)


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[Connection]:
    async with pool.acquire() as conn, conn.transaction():
        yield conn


class TestEvaluation:
    async def test_upgrade_records_change_and_event(self, conn: Connection, store: StoreCreated) -> None:
        sid = store.store_id
        await insert_member(conn, sid, "c1")
        await insert_member(conn, sid, "c2")
        await insert_order(conn, sid, "c1", subtotal=60_000, placed_at=NOW - DAY)
        await insert_order(conn, sid, "c2", subtotal=40_000, placed_at=NOW - DAY)
        assert await reevaluate(conn, sid, make_program()) == ["c1:member>silver"]
        assert await tier_of(conn, sid, "c1") == ("silver", NOW, None)
        change = await conn.fetchrow(
            "SELECT reason, metric_value, program_version FROM tier_changes WHERE store_id = $1", sid
        )
        assert dict(change) == {"reason": "upgrade (test)", "metric_value": 60_000, "program_version": 1}
        event = await conn.fetchrow(
            "SELECT customer_id, event_type, payload FROM outbox WHERE store_id = $1", sid
        )
        assert event["event_type"] == "tier.changed"
        assert event["payload"] == {
            "store_id": sid,
            "customer_id": "c1",
            "from": "member",
            "to": "silver",
            "reason": "upgrade (test)",
            "program_version": 1,
        }
        assert await reevaluate(conn, sid, make_program(), NOW + DAY) == []

    async def test_downgrade_only_after_grace(self, conn: Connection, store: StoreCreated) -> None:
        sid = store.store_id
        program = make_program(downgrade_grace_days=30)
        await insert_member(conn, sid, "c1", tier_code="gold")
        await insert_order(conn, sid, "c1", subtotal=60_000, placed_at=NOW - DAY)
        assert await reevaluate(conn, sid, program) == []
        assert (await tier_of(conn, sid, "c1"))[::2] == ("gold", NOW)
        assert await reevaluate(conn, sid, program, NOW + 29 * DAY) == []
        assert (await tier_of(conn, sid, "c1"))[::2] == ("gold", NOW)
        assert await reevaluate(conn, sid, program, NOW + 30 * DAY) == ["c1:gold>silver"]
        assert await tier_of(conn, sid, "c1") == ("silver", NOW + 30 * DAY, None)
        reason = await conn.fetchval("SELECT reason FROM tier_changes WHERE store_id = $1", sid)
        assert reason == "downgrade after grace (test)"

    async def test_recovery_clears_below_since(self, conn: Connection, store: StoreCreated) -> None:
        sid = store.store_id
        await insert_member(conn, sid, "c1", tier_code="silver")
        await reevaluate(conn, sid, make_program())
        assert (await tier_of(conn, sid, "c1"))[2] == NOW
        await insert_order(conn, sid, "c1", subtotal=50_000, placed_at=NOW + DAY)
        assert await reevaluate(conn, sid, make_program(), NOW + 2 * DAY) == []
        assert await tier_of(conn, sid, "c1") == ("silver", (await tier_of(conn, sid, "c1"))[1], None)
        assert await conn.fetchval("SELECT count(*) FROM tier_changes WHERE store_id = $1", sid) == 0

    async def test_zero_grace_downgrades_at_once_and_to_the_target(
        self, conn: Connection, store: StoreCreated
    ) -> None:
        sid = store.store_id
        await insert_member(conn, sid, "c1", tier_code="gold")
        assert await reevaluate(conn, sid, make_program(downgrade_grace_days=0)) == ["c1:gold>member"]

    async def test_removed_level_maps_to_the_evaluated_one(
        self, conn: Connection, store: StoreCreated
    ) -> None:
        sid = store.store_id
        await insert_member(conn, sid, "c1", tier_code="platinum", below_since=NOW - DAY)
        await insert_order(conn, sid, "c1", subtotal=200_000, placed_at=NOW - DAY)
        assert await reevaluate(conn, sid, make_program()) == ["c1:platinum>gold"]
        assert await tier_of(conn, sid, "c1") == ("gold", NOW, None)

    async def test_spend_is_net_of_refunds_paid_and_in_the_window(
        self, conn: Connection, store: StoreCreated
    ) -> None:
        sid = store.store_id
        program = make_program(window_days=30)
        await insert_member(conn, sid, "c1")
        await insert_order(conn, sid, "c1", subtotal=30_000, refunded=5_000, placed_at=NOW - 29 * DAY)
        await insert_order(conn, sid, "c1", subtotal=90_000, placed_at=NOW - DAY, status="cancelled")
        await insert_order(conn, sid, "c1", subtotal=90_000, placed_at=NOW - 30 * DAY)  # window edge: out
        await insert_order(conn, sid, "c1", subtotal=90_000, placed_at=NOW + DAY)  # after now: out
        await insert_order(conn, sid, "c1", subtotal=24_999, placed_at=NOW)
        assert await reevaluate(conn, sid, program) == []
        await insert_order(conn, sid, "c1", subtotal=1, placed_at=NOW)
        assert await reevaluate(conn, sid, program) == ["c1:member>silver"]
        metric = await conn.fetchval("SELECT metric_value FROM tier_changes WHERE store_id = $1", sid)
        assert metric == 50_000

    async def test_points_metric_is_net_of_reversals(self, conn: Connection, store: StoreCreated) -> None:
        sid = store.store_id
        program = make_program(
            metric="points",
            levels=[Level(code="member", name="M", threshold=0), Level(code="vip", name="V", threshold=100)],
        )
        await insert_member(conn, sid, "c1")
        await insert_member(conn, sid, "c2")
        await insert_order(conn, sid, "c1", subtotal=1, points=120, points_reversed=30, placed_at=NOW)
        await insert_order(conn, sid, "c2", subtotal=1, points=100, placed_at=NOW)
        assert await reevaluate(conn, sid, program) == ["c2:member>vip"]

    async def test_orders_metric_counts_paid_orders(self, conn: Connection, store: StoreCreated) -> None:
        sid = store.store_id
        program = make_program(
            metric="orders",
            levels=[
                Level(code="member", name="M", threshold=0),
                Level(code="regular", name="R", threshold=3),
            ],
        )
        await insert_member(conn, sid, "c1")
        for status in ("paid", "paid", "cancelled", "paid"):
            await insert_order(conn, sid, "c1", subtotal=100, placed_at=NOW - DAY, status=status)
        assert await reevaluate(conn, sid, program) == ["c1:member>regular"]

    async def test_customer_ids_limit_the_pass(self, conn: Connection, store: StoreCreated) -> None:
        sid = store.store_id
        for cid in ("c1", "c2"):
            await insert_member(conn, sid, cid)
            await insert_order(conn, sid, cid, subtotal=60_000, placed_at=NOW)
        changes = await programs.reevaluate(
            conn, store_id=sid, program=make_program(), now=NOW, reason="order", customer_ids=["c2"]
        )
        assert [(c.customer_id, c.to_tier, c.reason) for c in changes] == [
            ("c2", "silver", "upgrade (order)")
        ]
        assert (await tier_of(conn, sid, "c1"))[0] == "member"
        assert (
            await programs.reevaluate(
                conn, store_id=sid, program=make_program(), now=NOW, reason="x", customer_ids=[]
            )
            == []
        )

    @pytest.mark.parametrize(("seed", "store_wide"), [(1, True), (2, True), (3, False), (4, False)])
    async def test_sql_agrees_with_the_reference(
        self, conn: Connection, store: StoreCreated, seed: int, store_wide: bool
    ) -> None:
        """Random members, in one store-wide pass or by their ids, end where the pure rules put them."""
        rng = random.Random(seed)
        sid = store.store_id
        program = make_program(
            metric=rng.choice(["spend", "points", "orders"]),
            window_days=rng.choice([30, 365]),
            downgrade_grace_days=rng.choice([0, 10, 30]),
            levels=[
                Level(code="member", name="M", threshold=0),
                Level(code="silver", name="S", threshold=rng.choice([2, 300, 50_000])),
                Level(code="gold", name="G", threshold=rng.choice([5, 900, 150_000])),
            ],
        )
        expected = {}
        for n in range(150):
            cid = f"c{n}"
            tier = rng.choice(["member", "silver", "gold", "gone"])
            below = rng.choice([None, NOW - rng.randint(0, 40) * DAY])
            await insert_member(conn, sid, cid, tier_code=tier, below_since=below)
            spend = points = count = 0
            for _ in range(rng.randint(0, 4)):
                subtotal, earned = rng.randint(0, 120_000), rng.randint(0, 700)
                refunded, reversed_ = rng.randint(0, subtotal), rng.randint(0, earned)
                age = rng.randint(0, 400) * DAY
                status = rng.choice(["paid", "paid", "cancelled"])
                await insert_order(
                    conn, sid, cid, subtotal=subtotal, refunded=refunded, points=earned,
                    points_reversed=reversed_, placed_at=NOW - age, status=status,
                )  # fmt: skip
                if status == "paid" and age < timedelta(days=program.tiers.window_days):
                    spend, points, count = spend + subtotal - refunded, points + earned - reversed_, count + 1
            metric = {"spend": spend, "points": points, "orders": count}[program.tiers.metric]
            expected[cid] = evaluate(program, tier_code=tier, below_since=below, metric=metric, now=NOW)
        if store_wide:
            await reevaluate(conn, sid, program)
        else:
            await programs.reevaluate(
                conn, store_id=sid, program=program, now=NOW, reason="t", customer_ids=list(expected)
            )
        for cid, result in expected.items():
            tier, _, below = await tier_of(conn, sid, cid)
            assert (tier, below) == (result.tier_code, result.below_since), cid


async def test_a_store_wide_pass_locks_the_members_it_changes_in_key_order(
    pool: asyncpg.Pool, store: StoreCreated
) -> None:
    # Ingestion batches lock their members in key order; a pass locking them in any other order
    # (its plan's: here they were written in reverse) could deadlock with one.
    sid = store.store_id
    customers = [f"m{n:02}" for n in range(20)]
    async with pool.acquire() as conn:
        for customer_id in reversed(customers):
            await insert_member(conn, sid, customer_id)
            await insert_order(conn, sid, customer_id, subtotal=60_000, placed_at=NOW - DAY)
    async with pool.acquire() as holder, pool.acquire() as passing, pool.acquire() as probe:
        async with holder.transaction():
            await holder.execute(
                "SELECT 1 FROM members WHERE store_id = $1 AND customer_id = 'm00' FOR UPDATE", sid
            )
            pid = await passing.fetchval("SELECT pg_backend_pid()")

            async def store_wide() -> list[str]:
                async with passing.transaction():
                    return await reevaluate(passing, sid, make_program())

            task = asyncio.create_task(store_wide())
            assert await eventually(
                lambda: probe.fetchval("SELECT cardinality(pg_blocking_pids($1)) > 0", pid)
            )
            # Waiting for the first member, the pass holds no lock on any other.
            async with probe.transaction():
                locked = await probe.fetch(
                    "SELECT customer_id FROM members WHERE store_id = $1 AND customer_id <> 'm00' "
                    "FOR UPDATE NOWAIT",
                    sid,
                )
            assert len(locked) == len(customers) - 1
        assert await task == [f"{customer_id}:member>silver" for customer_id in customers]
