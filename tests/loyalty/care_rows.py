"""Rows for care tests: members with birthdays and consent, lots, programs with care triggers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import msgspec

from loyalty.program import Care, Program, QuietHours, Trigger, default_program
from loyalty.repository import Connection
from tests.sql_rows import insert_member


async def care_member(
    conn: Connection,
    store_id: str,
    customer_id: str,
    *,
    birthday: date | None = None,
    consent: bool = True,
    created_at: datetime | None = None,
    tier_code: str = "member",
) -> str:
    """A member as the scan sees one: birthday, marketing consent, membership start."""
    await insert_member(conn, store_id, customer_id, tier_code=tier_code)
    await conn.execute(
        """
        UPDATE members SET birthday = $3, marketing_consent = $4, created_at = coalesce($5, created_at),
                           first_name = 'Ann'
        WHERE store_id = $1 AND customer_id = $2
        """,
        store_id,
        customer_id,
        birthday,
        consent,
        created_at,
    )
    return customer_id


async def members_born_on(conn: Connection, store_id: str, birthday: date, count: int) -> None:
    """`count` consenting members m000, m001 … sharing a birthday, in one round trip."""
    await conn.executemany(
        "INSERT INTO members (store_id, customer_id, tier_code, tier_since, birthday, marketing_consent)"
        " VALUES ($1, $2, 'member', now(), $3, true)",
        [(store_id, f"m{i:03}", birthday) for i in range(count)],
    )


async def insert_lot(
    conn: Connection, store_id: str, customer_id: str, *, points: int, expires_at: datetime
) -> None:
    """An earned lot (and its ledger entry) expiring at `expires_at`."""
    entry_id = await conn.fetchval(
        """
        INSERT INTO ledger_entries (store_id, customer_id, kind, points, reason, expires_at)
        VALUES ($1, $2, 'adjust', $3, 'test', $4) RETURNING entry_id
        """,
        store_id,
        customer_id,
        points,
        expires_at,
    )
    await conn.execute(
        """
        INSERT INTO point_lots (store_id, customer_id, entry_id, points, remaining, available_at, expires_at)
        VALUES ($1, $2, $3, $4, $4, now(), $5)
        """,
        store_id,
        customer_id,
        entry_id,
        points,
        expires_at,
    )
    await conn.execute(
        "UPDATE members SET balance = balance + $3 WHERE store_id = $1 AND customer_id = $2",
        store_id,
        customer_id,
        points,
    )


def care_program(
    *triggers: dict[str, Any], quiet: tuple[str, str] = ("00:00", "00:00"), **care: Any
) -> Program:
    """The default program with these triggers (as JSON-like dicts); no quiet hours unless asked."""
    decoded = msgspec.convert(list(triggers), list[Trigger])
    settings = {"gift_budget_per_month": 100_000, "member_message_cap_days": 0} | care
    return msgspec.structs.replace(
        default_program(),
        care=Care(triggers=decoded, quiet_hours=QuietHours(start=quiet[0], end=quiet[1]), **settings),
    )


async def actions(conn: Connection, store_id: str) -> list[tuple[str, str, str, str]]:
    """(customer_id, trigger, kind, period_key) of the store's care actions, sorted."""
    rows = await conn.fetch(
        "SELECT customer_id, trigger, kind, period_key FROM care_actions WHERE store_id = $1"
        " ORDER BY customer_id, trigger, period_key",
        store_id,
    )
    return [(r["customer_id"], r["trigger"], r["kind"], r["period_key"]) for r in rows]


async def events(conn: Connection, store_id: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(event_type, customer_id, payload) of care's outbox rows, oldest first."""
    rows = await conn.fetch(
        "SELECT event_type, customer_id, payload FROM outbox WHERE store_id = $1"
        " AND event_type IN ('gift.triggered', 'suggestion.created') ORDER BY event_id",
        store_id,
    )
    return [(r["event_type"], r["customer_id"], r["payload"]) for r in rows]


async def stand_in_cases(conn: Connection, cases: Sequence[tuple[str, str, datetime]]) -> None:
    """Point `resolved_cases_for_recovery` at these cases, inside the caller's transaction."""
    await conn.execute(
        "CREATE TEMP TABLE stand_in_cases (customer_id text, case_id text, resolved_at timestamptz)"
    )
    await conn.executemany("INSERT INTO stand_in_cases VALUES ($1, $2, $3)", cases)
    await conn.execute(
        """
        CREATE OR REPLACE FUNCTION resolved_cases_for_recovery(p_store_id text, p_since timestamptz,
                                                               p_until timestamptz)
        RETURNS TABLE (customer_id text, case_id text, resolved_at timestamptz, reason text)
        LANGUAGE sql STABLE
        AS 'SELECT customer_id, case_id, resolved_at, ''resolved after a breached promise''
            FROM stand_in_cases WHERE resolved_at > p_since AND resolved_at <= p_until'
        """
    )
