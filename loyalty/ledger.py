"""The points ledger: append-only entries, lots, and a balance kept in the same transaction.

Invariants (tested with hypothesis in tests/loyalty/test_ledger_properties.py):
- a member's `balance` equals the sum of their ledger entries;
- a lot's `points - remaining` equals what its consumptions took, so no point is spent twice;
- the open lots hold exactly `max(balance, 0)` points.

Every change takes the member's row lock first (`members.lock`), which serializes a member's
ledger: concurrent redemptions cannot both see the same points.

Spending takes lots nearest-expiry-first (never-expiring last); a reversal takes its own order's
lot first. A lot past its expiry stays spendable until the `points.expire` job (hourly) takes
it: the balance every channel shows includes it until then, and spending agrees with it.

Debt policy. A reversal (refund, cancellation) takes back the order's points even when they were
already spent: it consumes the order's own lot, then other lots nearest-expiry-first, and whatever
is still missing stays as a negative balance — a debt that the member's next earnings pay off
first. Nothing is dropped; redemptions and negative adjustments, in contrast, never go below zero.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple, ParamSpec

from loyalty.errors import Conflict
from loyalty.repository import Connection, outbox
from loyalty.repository import ledger as repo
from loyalty.repository import members as members_repo


class InsufficientPoints(Conflict):
    code = "insufficient-points"
    title = "Not enough points"


WriteObserver = Callable[[str, int], None]
"""Told `(kind, entries)` whenever ledger entries are written."""
_observers: list[WriteObserver] = []


def observe_writes(observer: WriteObserver) -> None:
    """Have `observer` told of every write (plugin/metrics counts entries by kind this way, so the
    domain needs no metrics library). It is told when the write returns, inside the caller's
    transaction: an entry whose transaction later rolls back has been told too."""
    _observers.append(observer)


def _written(kind: str, entries: int = 1) -> None:
    for observer in _observers:
        observer(kind, entries)


class Posting(NamedTuple):
    """A ledger change as written: its entry and the member's balance after it."""

    entry_id: int
    balance: int


_P = ParamSpec("_P")


def _balance_only(post: Callable[_P, Awaitable[Posting]]) -> Callable[_P, Awaitable[int]]:
    # `earn`/`debit` predate `Posting`; their callers only want the balance.
    @functools.wraps(post)
    async def balance_of(*args: _P.args, **kwargs: _P.kwargs) -> int:
        return (await post(*args, **kwargs)).balance

    return balance_of


def credit(
    *,
    customer_id: str,
    points: int,
    reason: str,
    earned_at: datetime,
    expiry_days: int,
    pending_days: int = 0,
    order_id: str | None = None,
    rules: Sequence[str] = (),
) -> repo.Credit:
    """Points earned at `earned_at`: they expire `expiry_days` later (never for 0) and become
    spendable `pending_days` later."""
    if points <= 0:
        raise ValueError("earn needs positive points")
    return repo.Credit(
        customer_id=customer_id,
        points=points,
        reason=reason,
        order_id=order_id,
        rules=rules,
        expires_at=earned_at + timedelta(days=expiry_days) if expiry_days else None,
        available_at=earned_at + timedelta(days=pending_days),
        pending=bool(pending_days),
    )


async def post_earns(
    conn: Connection,
    *,
    store_id: str,
    credits: Sequence[repo.Credit],
    now: datetime,
    program_version: int | None = None,
    kind: str = "earn",
    announce: bool = False,
) -> dict[str, Posting]:
    """Credit each member (distinct) its points as a new lot, in one statement; a debt is paid
    from it first. Returns the postings by member.

    With `announce`, each `points.changed` outbox row (reason, delta, new balance) is written in
    the same statement as the entries, the lots and the balances.
    """
    if not credits:
        return {}
    earned = await repo.earn(
        conn,
        store_id=store_id,
        kind=kind,
        program_version=program_version,
        now=now,
        credits=credits,
        announce=announce,
    )
    for credited in credits:
        written = earned[credited.customer_id]
        if debt := min(credited.points, max(credited.points - written.balance, 0)):
            await repo.consume(
                conn,
                store_id=store_id,
                customer_id=credited.customer_id,
                points=debt,
                entry_id=written.entry_id,
                lot_id=written.lot_id,
            )
    _written(kind, len(credits))
    return {
        customer_id: Posting(written.entry_id, written.balance) for customer_id, written in earned.items()
    }


async def post_earn(
    conn: Connection,
    *,
    store_id: str,
    customer_id: str,
    points: int,
    reason: str,
    earned_at: datetime,
    now: datetime,
    expiry_days: int,
    pending_days: int = 0,
    order_id: str | None = None,
    rules: Sequence[str] = (),
    program_version: int | None = None,
    kind: str = "earn",
    announce: bool = False,
) -> Posting:
    """`post_earns` for one member."""
    earned = credit(
        customer_id=customer_id,
        points=points,
        reason=reason,
        earned_at=earned_at,
        expiry_days=expiry_days,
        pending_days=pending_days,
        order_id=order_id,
        rules=rules,
    )
    postings = await post_earns(
        conn,
        store_id=store_id,
        credits=[earned],
        now=now,
        program_version=program_version,
        kind=kind,
        announce=announce,
    )
    return postings[customer_id]


async def post_debit(
    conn: Connection,
    *,
    store_id: str,
    customer_id: str,
    kind: str,
    points: int,
    reason: str,
    now: datetime,
    allow_debt: bool,
    available_only: bool = False,
    order_id: str | None = None,
    refund_id: str | None = None,
    redemption_id: str | None = None,
    program_version: int | None = None,
) -> Posting:
    """Take points from the member's lots (the order's own first).

    Without `allow_debt`, raises InsufficientPoints (and writes nothing) when the lots — only the
    spendable ones with `available_only` — do not cover it.
    """
    if points <= 0:
        raise ValueError("debit needs positive points")
    if not allow_debt:
        have = await repo.open_points(
            conn, store_id=store_id, customer_id=customer_id, available_by=now if available_only else None
        )
        if have < points:
            raise InsufficientPoints(
                f"{points} points needed, {have} available", needed=points, available=have
            )
    entry_id = await repo.insert_entry(
        conn,
        store_id=store_id,
        customer_id=customer_id,
        kind=kind,
        points=-points,
        reason=reason,
        now=now,
        order_id=order_id,
        refund_id=refund_id,
        redemption_id=redemption_id,
        program_version=program_version,
    )
    await repo.consume(
        conn,
        store_id=store_id,
        customer_id=customer_id,
        points=points,
        entry_id=entry_id,
        order_first=order_id,
        available_by=now if available_only else None,
    )
    balance = await members_repo.add_balance(conn, store_id=store_id, customer_id=customer_id, points=-points)
    _written(kind)
    return Posting(entry_id, balance)


earn = _balance_only(post_earn)
"""`post_earn`, returning only the new balance."""
debit = _balance_only(post_debit)
"""`post_debit`, returning only the new balance."""


async def expire_due(conn: Connection, *, store_id: str, now: datetime, members: int) -> list[repo.Expired]:
    """Expire the due lots of up to `members` members of a store, with a `points.changed` each.

    Idempotent: an expired lot is empty, so a second run (or a concurrent worker, which waits on
    the member locks) finds nothing. Returns what expired; empty once the store has nothing due.
    """
    expired = await repo.expire_batch(conn, store_id=store_id, now=now, members=members)
    await outbox.emit_many(
        conn,
        store_id=store_id,
        event_type="points.changed",
        events=[
            (item.customer_id, {"delta": -item.points, "balance": item.balance, "reason": "expiry"})
            for item in expired
        ],
    )
    if expired:
        _written("expire", len(expired))
    return expired


async def stores_with_due_lots(conn: Connection, *, now: datetime) -> list[str]:
    """Stores that have lots due to expire by `now`."""
    return await repo.stores_with_due_lots(conn, now=now)
