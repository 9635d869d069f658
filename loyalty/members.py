"""Members: created and updated from customer events and from orders."""

from __future__ import annotations

from datetime import datetime

from loyalty.events import Customer
from loyalty.program import Program
from loyalty.repository import Connection
from loyalty.repository import members as repo
from loyalty.repository.members import MemberRow


async def upsert_customer(
    conn: Connection, *, store_id: str, customer: Customer, program: Program, now: datetime
) -> bool:
    """Apply a customer snapshot; False when an equally new or newer one is already kept."""
    return await repo.upsert_profile(
        conn,
        store_id=store_id,
        customer_id=customer.customer_id,
        email=customer.email,
        first_name=customer.first_name,
        last_name=customer.last_name,
        birthday=customer.birthday,
        marketing_consent=customer.marketing_consent,
        source_updated_at=customer.updated_at,
        tier_code=program.tiers.levels[0].code,
        now=now,
    )


async def lock_or_create(
    conn: Connection, *, store_id: str, customer_id: str, program: Program, now: datetime
) -> MemberRow:
    """The member, row-locked for a ledger change; created on the lowest level if new."""
    member = await repo.lock(conn, store_id=store_id, customer_id=customer_id)
    if member is None:
        await repo.ensure(
            conn, store_id=store_id, customer_id=customer_id, tier_code=program.tiers.levels[0].code, now=now
        )
        member = await repo.lock(conn, store_id=store_id, customer_id=customer_id)
        assert member is not None
    return member
