"""Redeeming points for a reward: one deduction per request, never below zero, never twice.

The member's row lock (taken first, as by every ledger change) serializes a member's
redemptions, so concurrent ones see each other's deductions: of N redemptions against a
balance that covers k of them, exactly k succeed. Only spendable points count: pending points
(inside the program's return window) cannot be redeemed yet.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from loyalty import idempotency, ledger
from loyalty.errors import InvalidInput, NotFound
from loyalty.idempotency import IdempotencyKeyMissing
from loyalty.program import Program
from loyalty.repository import Connection, outbox
from loyalty.repository import members as members_repo
from loyalty.repository import redemptions as repo

# Crockford's base32: no I, L, O or U, so a code read out over the phone survives.
_VOUCHER_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class RedemptionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Spend points on a reward of the store's program."""

    reward_id: Annotated[str, Meta(min_length=1, max_length=64, examples=["voucher-5"])]


class RedemptionCreated(msgspec.Struct, kw_only=True):
    """The reward issued: its voucher code, the points it cost and the balance left."""

    redemption_id: str
    reward_id: str
    points: int
    balance: int
    voucher_code: str


def voucher_code() -> str:
    """`PTR-XXXX-XXXX-XXXX-XXXX`: 80 random bits."""
    groups = ("".join(secrets.choice(_VOUCHER_ALPHABET) for _ in range(4)) for _ in range(4))
    return "PTR-" + "-".join(groups)


async def redeem(
    conn: Connection,
    *,
    store_id: str,
    customer_id: str,
    reward_id: str,
    program: Program,
    now: datetime,
) -> RedemptionCreated:
    """Issue the reward for its cost in spendable points.

    NotFound for an unknown member, InvalidInput (422) for a reward not in the program,
    InsufficientPoints (409) when the spendable points do not cover it; nothing is written then.
    Writes `reward.issued` and `points.changed` to the outbox with the change.
    """
    member = await members_repo.lock_live(conn, store_id=store_id, customer_id=customer_id)
    if member is None:
        raise NotFound(f"no member {customer_id}")
    reward = program.reward(reward_id)
    if reward is None:
        known = ", ".join(item.id for item in program.rewards) or "none"
        raise InvalidInput(f"no reward {reward_id!r} in the program (known: {known})", field="reward_id")
    redemption_id = "rd_" + secrets.token_hex(8)
    reason = f"redeemed {reward.name}"
    posting = await ledger.post_debit(
        conn,
        store_id=store_id,
        customer_id=customer_id,
        kind="redeem",
        points=reward.cost,
        reason=reason,
        now=now,
        allow_debt=False,
        available_only=True,
        redemption_id=redemption_id,
        program_version=program.version,
    )
    code = voucher_code()
    await repo.insert(
        conn,
        store_id=store_id,
        redemption_id=redemption_id,
        customer_id=customer_id,
        reward_id=reward.id,
        points=reward.cost,
        voucher_code=code,
        value=reward.value,
        now=now,
    )
    await outbox.emit(
        conn,
        store_id=store_id,
        customer_id=customer_id,
        event_type="reward.issued",
        data={
            "redemption_id": redemption_id,
            "reward_id": reward.id,
            "reward_kind": reward.kind,
            "value": reward.value,
            "voucher_code": code,
            "points": reward.cost,
        },
    )
    await outbox.emit(
        conn,
        store_id=store_id,
        customer_id=customer_id,
        event_type="points.changed",
        data={"delta": -reward.cost, "balance": posting.balance, "reason": reason},
    )
    return RedemptionCreated(
        redemption_id=redemption_id,
        reward_id=reward.id,
        points=reward.cost,
        balance=posting.balance,
        voucher_code=code,
    )


async def redeem_once(
    conn: Connection,
    *,
    store_id: str,
    customer_id: str,
    data: RedemptionCreate,
    idempotency_key: str | None,
    program: Program,
    now: datetime,
) -> tuple[RedemptionCreated, bool]:
    """`redeem` under an Idempotency-Key (required); returns the result and whether it was replayed."""
    if idempotency_key is None:
        raise IdempotencyKeyMissing("a redemption needs an Idempotency-Key header, so that a retry is safe")
    return await idempotency.once(
        conn,
        store_id=store_id,
        scope=f"redemption:{customer_id}",
        key=idempotency_key,
        request=data,
        run=lambda: redeem(
            conn,
            store_id=store_id,
            customer_id=customer_id,
            reward_id=data.reward_id,
            program=program,
            now=now,
        ),
        result_type=RedemptionCreated,
    )
