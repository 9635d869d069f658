"""Marketer adjustments: points given or taken by hand, always with a reason.

A positive adjustment is a lot like any earned one (it expires by the program's `expiry_days`
and pays off a debt first). A negative one takes points from the member's open lots, pending
ones included (a correction may need to undo points not yet spendable), and never makes a debt:
when the lots do not cover it, it is refused (409) and nothing changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from loyalty import idempotency, ledger
from loyalty.errors import InvalidInput, NotFound
from loyalty.program import Program
from loyalty.repository import Connection, outbox
from loyalty.repository import members as members_repo


class AdjustmentCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Give (positive) or take (negative) points, saying why; the reason is in the member's ledger."""

    points: Annotated[int, Meta(ge=-10_000_000, le=10_000_000, examples=[250, -100])]
    """Not 0."""
    reason: Annotated[str, Meta(min_length=1, max_length=500, examples=["goodwill: late delivery"])]


class AdjustmentCreated(msgspec.Struct, kw_only=True):
    """The ledger entry written and the member's balance after it."""

    entry_id: int
    points: int
    balance: int


async def adjust(
    conn: Connection,
    *,
    store_id: str,
    customer_id: str,
    data: AdjustmentCreate,
    program: Program,
    now: datetime,
) -> AdjustmentCreated:
    """Write an `adjust` entry; NotFound for an unknown member, InsufficientPoints when a
    negative adjustment is not covered by the open lots."""
    if data.points == 0:
        raise InvalidInput("an adjustment moves at least one point", field="points")
    if await members_repo.lock_live(conn, store_id=store_id, customer_id=customer_id) is None:
        raise NotFound(f"no member {customer_id}")
    reason = f"adjustment: {data.reason}"
    if data.points > 0:
        posting = await ledger.post_earn(
            conn,
            store_id=store_id,
            customer_id=customer_id,
            points=data.points,
            reason=reason,
            earned_at=now,
            now=now,
            expiry_days=program.points.expiry_days,
            program_version=program.version,
            kind="adjust",
        )
    else:
        posting = await ledger.post_debit(
            conn,
            store_id=store_id,
            customer_id=customer_id,
            kind="adjust",
            points=-data.points,
            reason=reason,
            now=now,
            allow_debt=False,
            program_version=program.version,
        )
    await outbox.emit(
        conn,
        store_id=store_id,
        customer_id=customer_id,
        event_type="points.changed",
        data={"delta": data.points, "balance": posting.balance, "reason": reason},
    )
    return AdjustmentCreated(entry_id=posting.entry_id, points=data.points, balance=posting.balance)


async def adjust_once(
    conn: Connection,
    *,
    store_id: str,
    customer_id: str,
    data: AdjustmentCreate,
    idempotency_key: str | None,
    program: Program,
    now: datetime,
) -> tuple[AdjustmentCreated, bool]:
    """`adjust`, once per Idempotency-Key when one is given (optional: a marketer's tool may
    not send one, and a repeated adjustment shows in the ledger with its reason)."""
    return await idempotency.once(
        conn,
        store_id=store_id,
        scope=f"adjustment:{customer_id}",
        key=idempotency_key,
        request=data,
        run=lambda: adjust(
            conn, store_id=store_id, customer_id=customer_id, data=data, program=program, now=now
        ),
        result_type=AdjustmentCreated,
    )
