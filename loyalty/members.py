"""Members: created and updated from customer events and from orders; the member view and ledger."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec

from loyalty import care_actions, cases, preferences
from loyalty.care_actions import Suggestion
from loyalty.cases import Case
from loyalty.errors import InvalidInput, NotFound
from loyalty.events import Customer
from loyalty.preferences import Preference
from loyalty.program import Program
from loyalty.repository import Connection
from loyalty.repository import cases as cases_repo
from loyalty.repository import ledger as ledger_repo
from loyalty.repository import members as repo
from loyalty.repository import orders as orders_repo
from loyalty.repository import preferences as preferences_repo
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


async def lock_from_orders(
    conn: Connection, *, store_id: str, customers: Sequence[Customer], program: Program, now: datetime
) -> dict[str, MemberRow]:
    """The members orders name, by id, row-locked for a ledger change, in one statement.

    An order's embedded customer fills in a new member (on the lowest level); it overwrites an
    existing one only when it says how new it is and is at least as new as what is kept.
    Customer ids must be distinct.
    """
    return await repo.upsert_locked(
        conn,
        store_id=store_id,
        members=[
            repo.MemberSnapshot(
                customer.customer_id,
                customer.email,
                customer.first_name,
                customer.last_name,
                customer.birthday,
                customer.marketing_consent,
                customer.updated_at,
            )
            for customer in customers
        ],
        tier_code=program.tiers.levels[0].code,
        now=now,
    )


# --- The member view -------------------------------------------------------------------------

EXPIRING_WITHIN = timedelta(days=30)
RECENT_ORDERS = 5
PROFILE_SUGGESTIONS = 10


class TierProgress(msgspec.Struct, kw_only=True):
    """How far the member is from the level above their own (`next` is null at the top)."""

    metric: str
    """`spend` (minor units, net of refunds), `points` or `orders`, over the program's window."""
    current: int
    next: str | None
    """The code of the next level."""
    needed: int
    """How much more of the metric reaches it; 0 at the top."""


class TierView(msgspec.Struct, kw_only=True):
    """The member's level, since when they hold it, and their progress to the next one."""

    code: str
    name: str
    since: datetime
    progress: TierProgress


class ExpiringPoints(msgspec.Struct, kw_only=True):
    """Points that expire at `expires_at` unless spent first."""

    points: int
    expires_at: datetime


class PointsView(msgspec.Struct, kw_only=True):
    """`balance` is the sum of the member's ledger (negative only as a debt from a reversal);
    `available` can be spent now, `pending` only after the return window; `expiring` lists what
    expires in the next 30 days."""

    balance: int
    available: int
    pending: int
    expiring: list[ExpiringPoints]


class RecentOrder(msgspec.Struct, kw_only=True):
    """One of the member's latest orders; `points` are net of what refunds took back."""

    order_id: str
    placed_at: datetime
    subtotal: int
    refunded: int
    currency: str
    points: int
    status: str


class MemberView(msgspec.Struct, kw_only=True):
    """The one profile every channel sees.

    `open_cases` lists unresolved service cases with their promises, breached ones first.
    `version` counts the changes to the member: it is the number the change feed
    (`/changes`, `/events`) carries. `suggestions` lists the care engine's suggestions and gifts
    delivered and neither acted on, dismissed nor expired, newest first (at most 10; all of them at
    `/suggestions`).
    """

    customer_id: str
    version: int = 0
    email: str | None
    name: str | None
    tier: TierView
    points: PointsView
    preferences: dict[str, Preference] = msgspec.field(default_factory=dict)
    open_cases: list[Case] = msgspec.field(default_factory=list)
    recent_orders: list[RecentOrder] = msgspec.field(default_factory=list)
    suggestions: list[Suggestion] = msgspec.field(default_factory=list)
    updated_at: datetime


def tier_progress(program: Program, *, tier_code: str, metric: int) -> TierProgress:
    """Progress from the member's level to the one above it (by threshold), as the tier rules rank them."""
    current = program.level(tier_code)
    above = [level for level in program.tiers.levels if level.threshold > current.threshold]
    following = above[0] if above else None
    return TierProgress(
        metric=program.tiers.metric,
        current=metric,
        next=following.code if following else None,
        needed=max(following.threshold - metric, 0) if following else 0,
    )


def _name(first_name: str | None, last_name: str | None) -> str | None:
    return " ".join(part for part in (first_name, last_name) if part) or None


class Snapshot(msgspec.Struct, kw_only=True):
    """A member's view as of one version of the member and of the program, and until when it holds."""

    version: int
    program_version: int
    valid_until: datetime | None
    """When the view changes by the clock alone (pending points, expiry windows, due promises)."""
    view: MemberView


async def snapshot(
    conn: Connection, *, store_id: str, customer_id: str, program: Program, now: datetime
) -> Snapshot:
    """The view with the versions it reflects. Run it in one REPEATABLE READ transaction, so the
    versions and every part of the view come from the same snapshot."""
    versions = await repo.version(conn, store_id=store_id, customer_id=customer_id)
    if versions is None:
        raise NotFound(f"no member {customer_id}")
    member_view = await view(conn, store_id=store_id, customer_id=customer_id, program=program, now=now)
    until = await repo.valid_until(
        conn,
        store_id=store_id,
        customer_id=customer_id,
        now=now,
        expiring_within=EXPIRING_WITHIN,
        window_days=program.tiers.window_days,
    )
    return Snapshot(
        version=versions.version,
        program_version=versions.program_version,
        valid_until=until,
        view=member_view,
    )


async def view(
    conn: Connection, *, store_id: str, customer_id: str, program: Program, now: datetime
) -> MemberView:
    """The member's profile, tier with progress, points, preferences, open cases and recent orders;
    NotFound if unknown."""
    member = await repo.find(conn, store_id=store_id, customer_id=customer_id)
    if member is None:
        raise NotFound(f"no member {customer_id}")
    version = await repo.version(conn, store_id=store_id, customer_id=customer_id)
    stored_preferences = await preferences_repo.get(conn, store_id=store_id, customer_id=customer_id)
    open_cases = await cases_repo.for_member(
        conn, store_id=store_id, customer_id=customer_id, statuses=cases.UNRESOLVED, limit=50
    )
    level = program.level(member.tier_code)
    metric = await orders_repo.member_metric(
        conn,
        store_id=store_id,
        customer_id=customer_id,
        metric=program.tiers.metric,
        window_days=program.tiers.window_days,
        now=now,
    )
    totals = await ledger_repo.point_totals(conn, store_id=store_id, customer_id=customer_id, now=now)
    expiring = await ledger_repo.expiring(
        conn, store_id=store_id, customer_id=customer_id, after=now, until=now + EXPIRING_WITHIN
    )
    orders = await orders_repo.recent(conn, store_id=store_id, customer_id=customer_id, limit=RECENT_ORDERS)
    suggestions = await care_actions.live(
        conn, store_id=store_id, customer_id=customer_id, now=now, limit=PROFILE_SUGGESTIONS
    )
    shown_cases = [cases.as_case(row, now=now) for row in open_cases]
    shown_cases.sort(key=lambda case: (not case.breached, case.resolution_due))
    return MemberView(
        customer_id=member.customer_id,
        version=0 if version is None else version.version,
        email=member.email,
        name=_name(member.first_name, member.last_name),
        tier=TierView(
            code=level.code,
            name=level.name,
            since=member.tier_since,
            progress=tier_progress(program, tier_code=level.code, metric=metric),
        ),
        points=PointsView(
            balance=member.balance,
            available=totals.available,
            pending=totals.pending,
            expiring=[ExpiringPoints(points=item.points, expires_at=item.expires_at) for item in expiring],
        ),
        preferences=preferences.decode(stored_preferences or {}),
        open_cases=shown_cases,
        recent_orders=[msgspec.convert(order, RecentOrder, from_attributes=True) for order in orders],
        suggestions=suggestions,
        updated_at=member.updated_at,
    )


def etag(value: msgspec.Struct) -> str:
    """A strong ETag of a response body: it changes whenever any field does."""
    return '"' + hashlib.sha256(msgspec.json.encode(value)).hexdigest()[:32] + '"'


# --- The member list, for browsing -----------------------------------------------------------


class MemberSummary(msgspec.Struct, kw_only=True):
    """A member as listed: who, their level and points; the full profile is `GET /v1/members/{cid}`."""

    customer_id: str
    email: str | None
    name: str | None
    tier: str
    """The code of the member's level."""
    tier_since: datetime
    balance: int
    orders_count: int
    updated_at: datetime


class MemberPage(msgspec.Struct, kw_only=True):
    """Members by customer id; pass `next_cursor` as `cursor` for the next page (null: no more)."""

    items: list[MemberSummary]
    next_cursor: str | None


async def page(
    conn: Connection, *, store_id: str, search: str | None, tier: str | None, after: str | None, limit: int
) -> tuple[list[MemberSummary], str | None]:
    """A page of the store's members by customer id, and the customer id to continue after (None: no
    more). `search` is a prefix of the customer id or of the email."""
    rows = await repo.page(
        conn, store_id=store_id, search=search, tier_code=tier, after=after, limit=limit + 1
    )
    items = [
        MemberSummary(
            customer_id=row.customer_id,
            email=row.email,
            name=_name(row.first_name, row.last_name),
            tier=row.tier_code,
            tier_since=row.tier_since,
            balance=row.balance,
            orders_count=row.orders_count,
            updated_at=row.updated_at,
        )
        for row in rows[:limit]
    ]
    return items, items[-1].customer_id if len(rows) > limit else None


# --- The ledger, newest first ----------------------------------------------------------------


class LedgerEntry(msgspec.Struct, kw_only=True):
    """One change of the member's points and why: the order, refund or redemption behind it, the
    rules that applied and the program version that produced it."""

    entry_id: int
    kind: str
    """`earn`, `redeem`, `expire`, `reverse` or `adjust`."""
    points: int
    order_id: str | None
    refund_id: str | None
    redemption_id: str | None
    reason: str
    rules: list[str]
    program_version: int | None
    expires_at: datetime | None
    available_at: datetime | None
    """For pending points: when they become spendable."""
    created_at: datetime


class LedgerPage(msgspec.Struct, kw_only=True):
    """Entries newest first; pass `next_cursor` as `cursor` for the next page (null: no more)."""

    entries: list[LedgerEntry]
    next_cursor: str | None


def _encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"e{entry_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("e") or not text[1:].isdigit():
            raise ValueError(text)
        return int(text[1:])
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidInput("not a cursor this API returned", field="cursor") from None


async def ledger_page(
    conn: Connection, *, store_id: str, customer_id: str, cursor: str | None, limit: int
) -> LedgerPage:
    """A page of the member's ledger entries, newest first; NotFound for an unknown member."""
    before = None if cursor is None else _decode_cursor(cursor)
    if await repo.find(conn, store_id=store_id, customer_id=customer_id) is None:
        raise NotFound(f"no member {customer_id}")
    rows = await ledger_repo.list_entries(
        conn, store_id=store_id, customer_id=customer_id, before=before, limit=limit + 1
    )
    entries = [msgspec.convert(row, LedgerEntry, from_attributes=True) for row in rows[:limit]]
    next_cursor = _encode_cursor(entries[-1].entry_id) if len(rows) > limit else None
    return LedgerPage(entries=entries, next_cursor=next_cursor)


async def current_versions(
    conn: Connection, *, keys: Sequence[tuple[str, str]]
) -> list[repo.VersionRow | None]:
    """For each (store_id, customer_id), in order, the member's version and the live program
    version, or None for an unknown or erased member."""
    return await repo.versions(conn, keys=keys)
