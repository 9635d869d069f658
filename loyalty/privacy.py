"""A member's data: the change feed they can follow, the export of everything kept, and erasure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from loyalty.errors import NotFound
from loyalty.repository import Connection
from loyalty.repository import members as members_repo
from loyalty.repository import privacy as repo


class Change(msgspec.Struct, kw_only=True):
    """One version of the member and what kinds of change made it (`order`, `points`, `tier`,
    `redemption`, `preferences`, `case`, `care`, `member`)."""

    version: int
    kinds: list[str]
    changed_at: datetime


class ChangesPage(msgspec.Struct, kw_only=True):
    """Changes after `since`, oldest first; `version` is the member's current one. Ask again with
    `since` = the last item's version while `more` is true."""

    items: list[Change]
    version: int
    more: bool


class MemberExport(msgspec.Struct, kw_only=True):
    """Everything Patron keeps about a member, machine-readable, by kind."""

    customer_id: str
    exported_at: datetime
    data: dict[str, Any]


async def changes_since(
    conn: Connection, *, store_id: str, customer_id: str, since: int, limit: int
) -> ChangesPage:
    """The member's changes after version `since`; NotFound for an unknown or erased member."""
    current = await members_repo.version(conn, store_id=store_id, customer_id=customer_id)
    if current is None:
        raise NotFound(f"no member {customer_id}")
    rows = await repo.changes(conn, store_id=store_id, customer_id=customer_id, since=since, limit=limit + 1)
    items = [msgspec.convert(row, Change, from_attributes=True) for row in rows[:limit]]
    return ChangesPage(items=items, version=current.version, more=len(rows) > limit)


async def export(conn: Connection, *, store_id: str, customer_id: str, now: datetime) -> MemberExport:
    """All of the member's data; NotFound for an unknown member (an erased one exports what is left)."""
    data = await repo.export(conn, store_id=store_id, customer_id=customer_id)
    if data is None:
        raise NotFound(f"no member {customer_id}")
    return MemberExport(customer_id=customer_id, exported_at=now, data=data)


async def erase(conn: Connection, *, store_id: str, customer_id: str, now: datetime) -> None:
    """Remove the member's personal data, keep the books (ledger, orders) under the storefront's
    opaque id; NotFound when unknown or already erased."""
    if not await repo.erase(conn, store_id=store_id, customer_id=customer_id, now=now):
        raise NotFound(f"no member {customer_id}")
