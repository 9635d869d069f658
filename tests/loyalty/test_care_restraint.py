"""Care's rules of restraint: budget, cooldown, frequency cap, consent, quiet hours, idempotency."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from loyalty import care, program_preview
from loyalty.program import Program, QuietHours
from loyalty.repository import Connection
from loyalty.stores import StoreCreated
from tests.loyalty.care_rows import (
    actions,
    care_member,
    care_program,
    events,
    insert_lot,
    members_born_on,
    stand_in_cases,
)
from tests.sql_rows import insert_order

VOUCHER = {"kind": "voucher", "value": 500}
NOON = datetime(2026, 6, 10, 10, tzinfo=UTC)  # 12:00 in Berlin, the test store's zone


async def run(
    pool: asyncpg.Pool, store_id: str, now: datetime, program: Program, **kw: object
) -> care.ScanResult:
    async with pool.acquire() as conn, conn.transaction():
        return await care.scan(conn, store_id=store_id, now=now, program=program, **kw)  # type: ignore[arg-type]


class TestDeliverAfter:
    BERLIN = ZoneInfo("Europe/Berlin")

    def test_overnight_quiet_hours_wait_for_the_morning(self) -> None:
        quiet = QuietHours(start="21:00", end="08:00")
        late = datetime(2026, 6, 10, 20, 30, tzinfo=UTC)  # 22:30 in Berlin
        early = datetime(2026, 6, 10, 4, tzinfo=UTC)  # 06:00 in Berlin
        assert care.deliver_after(late, self.BERLIN, quiet) == datetime(2026, 6, 11, 6, tzinfo=UTC)
        assert care.deliver_after(early, self.BERLIN, quiet) == datetime(2026, 6, 10, 6, tzinfo=UTC)
        assert care.deliver_after(NOON, self.BERLIN, quiet) == NOON

    def test_daytime_quiet_hours_and_none(self) -> None:
        lunch = QuietHours(start="12:00", end="14:00")
        assert care.deliver_after(NOON, self.BERLIN, lunch) == datetime(2026, 6, 10, 12, tzinfo=UTC)
        assert care.deliver_after(NOON, self.BERLIN, QuietHours(start="08:00", end="08:00")) == NOON


async def test_budget_is_never_exceeded_and_the_most_valuable_members_win(
    pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        for cid, spend in (("a-low", 1_000), ("b-high", 90_000), ("c-mid", 20_000)):
            await care_member(conn, sid, cid, birthday=date(1990, 6, 10))
            await insert_order(conn, sid, cid, subtotal=spend, placed_at=NOON - timedelta(days=100))
        await care_member(conn, sid, "late", birthday=date(1990, 6, 12))
    program = care_program({"kind": "birthday", "gift": VOUCHER}, gift_budget_per_month=1_200)
    result = await run(pool, sid, NOON, program)
    assert [(c.trigger, c.actions, c.cost) for c in result.actions] == [("birthday", 2, 1000)]
    await run(pool, sid, NOON + timedelta(days=2), program)  # 200 left: "late" does not fit
    async with pool.acquire() as conn:
        assert [a[0] for a in await actions(conn, sid)] == ["b-high", "c-mid"]
        spent = await conn.fetchval("SELECT sum(cost) FROM care_actions WHERE store_id = $1", sid)
    assert spent == 1_000
    # A new month, a new budget (a birthday next month for "late" next year is another story).
    async with pool.acquire() as conn:
        await care_member(conn, sid, "july", birthday=date(1990, 7, 1))
    await run(pool, sid, datetime(2026, 7, 1, 10, tzinfo=UTC), program)
    async with pool.acquire() as conn:
        assert [a[0] for a in await actions(conn, sid)] == ["b-high", "c-mid", "july"]


async def test_service_recovery_outranks_a_birthday_for_the_last_budget(
    pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid = store.store_id
    program = care_program(
        {"kind": "birthday", "gift": VOUCHER},
        {"kind": "service_recovery", "gift": VOUCHER},
        gift_budget_per_month=500,
    )
    async with pool.acquire() as conn:
        # The stand-in function goes with the transaction, rolled back at the end.
        transaction = conn.transaction()
        await transaction.start()
        try:
            await care_member(conn, sid, "rich", birthday=date(1990, 6, 10))
            await insert_order(conn, sid, "rich", subtotal=500_000, placed_at=NOON - timedelta(days=5))
            await care_member(conn, sid, "upset", consent=False)
            await stand_in_cases(conn, [("upset", "9", NOON - timedelta(hours=3))])
            await care.scan(conn, store_id=sid, now=NOON, program=program)
            assert await actions(conn, sid) == [("upset", "service_recovery", "gift", "case-9")]
            [(kind, _, payload)] = await events(conn, sid)
            assert kind == "gift.triggered"
            assert payload["reason"] == "resolved after a breached promise"

        finally:
            await transaction.rollback()


async def test_gift_cooldown_and_the_message_cap(pool: asyncpg.Pool, store: StoreCreated) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        await care_member(
            conn, sid, "ann", birthday=date(1990, 6, 10), created_at=datetime(2024, 6, 20, tzinfo=UTC)
        )
    program = care_program(
        {"kind": "birthday", "gift": VOUCHER},
        {"kind": "anniversary", "gift": VOUCHER},
        {"kind": "points_expiring", "days_before": 30},
        member_gift_cooldown_days=90,
        member_message_cap_days=3,
    )
    async with pool.acquire() as conn:
        await insert_lot(conn, sid, "ann", points=100, expires_at=NOON + timedelta(days=12))
    await run(pool, sid, NOON, program)  # birthday gift wins the member for this scan
    await run(pool, sid, NOON + timedelta(days=1), program)  # points_expiring: capped (3 days)
    async with pool.acquire() as conn:
        assert [a[1] for a in await actions(conn, sid)] == ["birthday"]
    await run(pool, sid, NOON + timedelta(days=3, hours=1), program)  # cap over: the suggestion
    await run(pool, sid, NOON + timedelta(days=10), program)  # anniversary: gift in cooldown
    async with pool.acquire() as conn:
        assert [a[1] for a in await actions(conn, sid)] == ["birthday", "points_expiring"]


async def test_consent_is_needed_for_everything_but_service_recovery(
    pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        await care_member(conn, sid, "no", birthday=date(1990, 6, 10), consent=False)
        await care_member(conn, sid, "yes", birthday=date(1990, 6, 10), consent=True)
    await run(pool, sid, NOON, care_program({"kind": "birthday"}))
    async with pool.acquire() as conn:
        assert [a[0] for a in await actions(conn, sid)] == ["yes"]


async def test_quiet_hours_defer_the_outbox_row_to_the_morning(
    pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        await care_member(conn, sid, "ann", birthday=date(1990, 6, 10))
    program = care_program({"kind": "birthday", "gift": VOUCHER}, quiet=("21:00", "08:00"))
    night = datetime(2026, 6, 9, 22, 30, tzinfo=UTC)  # 00:30 on the 10th in Berlin
    result = await run(pool, sid, night, program)
    assert result.deliver_after == datetime(2026, 6, 10, 6, tzinfo=UTC)
    assert [(c.actions, c.emitted) for c in result.actions] == [(1, 0)]
    async with pool.acquire() as conn:
        assert await events(conn, sid) == []
    await run(pool, sid, datetime(2026, 6, 10, 5, 59, tzinfo=UTC), program)
    async with pool.acquire() as conn:
        assert await events(conn, sid) == []
    morning = await run(pool, sid, datetime(2026, 6, 10, 6, 5, tzinfo=UTC), program)
    again = await run(pool, sid, datetime(2026, 6, 10, 7, tzinfo=UTC), program)
    assert (morning.emitted_due, again.emitted_due) == (1, 0)
    async with pool.acquire() as conn:
        [(kind, _, payload)] = await events(conn, sid)
    assert kind == "gift.triggered"
    assert payload["deliver_after"].startswith("2026-06-10T06:00:00")


async def test_two_scans_at_once_issue_nothing_twice(pool: asyncpg.Pool, store: StoreCreated) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        await members_born_on(conn, sid, date(1990, 6, 10), 200)
    program = care_program(
        {"kind": "birthday", "gift": VOUCHER}, gift_budget_per_month=50_000, member_message_cap_days=3
    )
    results = await asyncio.gather(*(run(pool, sid, NOON, program) for _ in range(4)))
    issued = sorted(sum(c.actions for c in r.actions) for r in results)
    assert issued == [0, 0, 0, 100]  # the budget holds 100 gifts of 500
    async with pool.acquire() as conn:
        assert len(await actions(conn, sid)) == 100
        assert len(await events(conn, sid)) == 100


async def test_replenish_and_recommended_next_come_from_the_sources(
    pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        await care_member(conn, sid, "ann")
        await care_member(conn, sid, "bob")

    async def needs(_: Connection, store_id: str, now: datetime, horizon: int) -> list[care.Need]:
        assert (store_id, horizon) == (sid, 3)
        return [
            care.Need(customer_id="ann", product_id="beans", due_at=now + timedelta(days=2), confidence=0.9),
            care.Need(
                customer_id="ann", product_id="filters", due_at=now + timedelta(days=1), confidence=0.8
            ),
            care.Need(customer_id="ann", product_id="mugs", due_at=now + timedelta(days=2), confidence=0.1),
            care.Need(customer_id="bob", product_id="beans", due_at=now + timedelta(days=9), confidence=0.9),
        ]

    async def recommendations(
        store_id: str, customer_ids: Sequence[str], products: int
    ) -> care.Recommendations:
        assert (store_id, sorted(customer_ids), products) == (sid, ["ann", "bob"], 3)
        return care.Recommendations(
            customer_ids=["bob", "bob", "ann"],
            product_ids=["grinder", "kettle", "mug"],
            reasons=["goes with your beans", "popular", "popular"],
        )

    sources = care.CareSources(needs=needs, recommendations=recommendations)
    program = care_program({"kind": "replenish", "days_before": 3}, {"kind": "recommended_next"})
    await run(pool, sid, NOON, program, sources=sources)
    async with pool.acquire() as conn:
        assert await actions(conn, sid) == [
            ("ann", "replenish", "suggestion", "week-2026-24"),
            ("bob", "recommended_next", "suggestion", "month-2026-06"),
        ]
        payloads = {customer: payload for _, customer, payload in await events(conn, sid)}
    assert payloads["ann"]["product_ids"] == ["filters", "beans"]
    assert payloads["bob"]["product_ids"] == ["grinder", "kettle"]
    assert payloads["bob"]["reason"] == "goes with your beans: grinder, kettle"


async def test_preview_projects_gifts_of_the_next_30_days_and_keeps_nothing(
    pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        for cid, birthday in (
            ("in-5-days", date(1990, 6, 15)),
            ("in-25", date(1985, 7, 5)),
            ("in-40", date(1970, 7, 20)),
        ):
            await care_member(conn, sid, cid, birthday=birthday)
        await care_member(conn, sid, "joined", created_at=datetime(2025, 6, 20, 9, tzinfo=UTC))
    candidate = care_program(
        {"kind": "birthday", "gift": VOUCHER},
        {"kind": "anniversary", "gift": {"kind": "voucher", "value": 300}},
        {"kind": "points_expiring"},
        gift_budget_per_month=800,
    )
    async with pool.acquire() as conn, conn.transaction():
        preview = await program_preview.preview(conn, store_id=sid, candidate=candidate, now=NOON)
    # June's budget (800) takes the birthday on the 15th (500) and the anniversary on the 20th (300);
    # July's budget takes the birthday on the 5th.
    assert (preview.gifts_next_30_days, preview.gift_budget_next_30_days) == (3, 1300)
    assert preview.gifts_by_trigger == {"birthday": 2, "anniversary": 1}
    assert preview.gift_budget_by_trigger == {"birthday": 1000, "anniversary": 300}
    async with pool.acquire() as conn:
        assert await actions(conn, sid) == []
        assert await events(conn, sid) == []
        assert await conn.fetchval("SELECT count(*) FROM care_scans WHERE store_id = $1", sid) == 0
