"""Service cases: opened on any channel, promised by the store's SLA, followed to resolution and rated.

Statuses go `open` → `pending` → `resolved` → `closed`; a resolved or closed case can be reopened
(to `open`, with a fresh resolution promise). The first `response` is the first-response time.
A breach, once recorded (by the worker when a promise falls due, or by a late response or
resolution), stays recorded. Every change emits `case.opened` / `case.updated` in its transaction.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from loyalty import sla
from loyalty.errors import Conflict, InvalidInput, NotFound
from loyalty.preferences import Channel
from loyalty.repository import Connection, outbox
from loyalty.repository import cases as repo
from loyalty.repository import members as members_repo
from loyalty.repository.cases import CaseRow, MetricsRow
from loyalty.sla import Priority, SlaPolicy

Status = Literal["open", "pending", "resolved", "closed"]
UNRESOLVED: list[str] = ["open", "pending"]
TRANSITIONS: dict[str, set[str]] = {
    "open": {"pending", "resolved", "closed"},
    "pending": {"open", "resolved", "closed"},
    "resolved": {"open", "closed"},
    "closed": {"open"},
}
Text = Annotated[str, Meta(min_length=1, max_length=10_000)]


class CaseCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new case: where it was raised, what it is about, how urgent it is, the customer's words."""

    channel: Channel
    subject: Annotated[str, Meta(min_length=1, max_length=200)]
    category: Annotated[str, Meta(min_length=1, max_length=60)]
    priority: Priority = "normal"
    body: Text | None = None


class CaseEventCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A note (internal), a response (to the customer) or a status change, made on `channel`.

    A `status` on a note or response changes the status too; a `status` event needs one.
    """

    kind: Literal["note", "response", "status"]
    channel: Channel
    body: Text | None = None
    status: Status | None = None


class SatisfactionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The customer's rating of a resolved case."""

    score: Annotated[int, Meta(ge=1, le=5)]
    comment: Annotated[str, Meta(max_length=2000)] | None = None


class CaseEvent(msgspec.Struct, kw_only=True):
    """One entry of a case's timeline."""

    kind: str
    """`opened`, `note`, `response`, `status`, `satisfaction` or `breach`."""
    channel: str
    actor: str
    body: str | None
    status: str | None
    created_at: datetime


class Case(msgspec.Struct, kw_only=True):
    """A service case with its promises: what is due by when, and whether a promise was broken."""

    case_id: str
    customer_id: str
    channel: str
    subject: str
    category: str
    priority: str
    status: str
    opened_at: datetime
    first_response_due: datetime
    resolution_due: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    breached: bool
    """A promise (first response or resolution) was not kept, or is overdue now."""
    first_response_breached: bool
    resolution_breached: bool
    satisfaction_score: int | None
    satisfaction_comment: str | None
    updated_at: datetime
    events: list[CaseEvent] | None = None
    """The timeline, oldest first (on a single case only)."""


class CaseList(msgspec.Struct, kw_only=True):
    """A member's cases, breached first, then by resolution due."""

    items: list[Case]


class CaseMetrics(msgspec.Struct, kw_only=True):
    """Cases opened in the period: `channel`/`category` null on the totals row."""

    channel: str | None
    category: str | None
    cases: int
    open: int
    median_first_response_seconds: float | None
    breached: int
    breach_rate: float | None
    mean_satisfaction: float | None
    rated: int


class MetricsReport(msgspec.Struct, kw_only=True):
    """Service metrics since `since`: the totals, then by channel, then by category."""

    since: datetime
    total: CaseMetrics
    by_channel: list[CaseMetrics]
    by_category: list[CaseMetrics]


def as_case(row: CaseRow, *, now: datetime, events: list[CaseEvent] | None = None) -> Case:
    """A row as the API shows it: an overdue unresolved promise counts as breached even before
    the worker flags it."""
    unresolved = row.status in UNRESOLVED
    first_late = row.first_response_breached or (
        unresolved and row.first_response_at is None and row.first_response_due <= now
    )
    resolution_late = row.resolution_breached or (unresolved and row.resolution_due <= now)
    fields = msgspec.structs.asdict(row)
    fields |= {"first_response_breached": first_late, "resolution_breached": resolution_late}
    return Case(**fields, breached=first_late or resolution_late, events=events)


async def policy(conn: Connection, *, store_id: str) -> SlaPolicy:
    """The store's SLA policy, or the defaults."""
    stored = await repo.get_policy(conn, store_id=store_id)
    return sla.DEFAULT_POLICY if stored is None else msgspec.convert(stored, SlaPolicy)


async def set_policy(conn: Connection, *, store_id: str, new: SlaPolicy) -> SlaPolicy:
    """Replace the store's SLA policy; applies to cases opened (or reopened) from now on."""
    await repo.put_policy(conn, store_id=store_id, policy=msgspec.to_builtins(sla.validate(new)))
    return new


async def _timezone(conn: Connection, store_id: str) -> str:
    return await repo.store_timezone(conn, store_id=store_id) or "UTC"


async def open_case(
    conn: Connection, *, store_id: str, customer_id: str, data: CaseCreate, actor: str, now: datetime
) -> Case:
    """Open a case for a known member with its promises; emits `case.opened`."""
    if await members_repo.lock_live(conn, store_id=store_id, customer_id=customer_id) is None:
        raise NotFound(f"no member {customer_id}")
    due = sla.due_times(
        await policy(conn, store_id=store_id),
        priority=data.priority,
        opened_at=now,
        timezone=await _timezone(conn, store_id),
    )
    row = await repo.insert(
        conn,
        store_id=store_id,
        case_id="case_" + secrets.token_hex(8),
        customer_id=customer_id,
        channel=data.channel,
        subject=data.subject,
        category=data.category,
        priority=data.priority,
        opened_at=now,
        first_response_due=due.first_response_due,
        resolution_due=due.resolution_due,
    )
    await repo.add_event(
        conn,
        store_id=store_id,
        case_id=row.case_id,
        customer_id=customer_id,
        kind="opened",
        channel=data.channel,
        actor=actor,
        body=data.body,
        status="open",
        at=now,
    )
    case = as_case(row, now=now)
    await outbox.emit(
        conn, store_id=store_id, customer_id=customer_id, event_type="case.opened", data=_payload(case)
    )
    return case


def _payload(case: Case) -> dict[str, object]:
    return msgspec.to_builtins(msgspec.structs.replace(case, events=None))  # type: ignore[no-any-return]


async def get_case(
    conn: Connection, *, store_id: str, case_id: str, customer_id: str | None, now: datetime
) -> Case:
    """A case with its timeline. With `customer_id` (a member token), another member's case is
    unknown and internal notes are left out."""
    row = await repo.get(conn, store_id=store_id, case_id=case_id)
    if row is None or (customer_id is not None and row.customer_id != customer_id):
        raise NotFound(f"no case {case_id}")
    # A member sees what was said to them, not the agents' internal notes.
    events = [
        msgspec.convert(event, CaseEvent, from_attributes=True)
        for event in await repo.events(conn, store_id=store_id, case_id=case_id)
        if customer_id is None or event.kind != "note"
    ]
    return as_case(row, now=now, events=events)


async def member_cases(
    conn: Connection, *, store_id: str, customer_id: str, status: str | None, now: datetime, limit: int = 100
) -> CaseList:
    """The member's cases (of one status if given), breached first."""
    if await members_repo.find(conn, store_id=store_id, customer_id=customer_id) is None:
        raise NotFound(f"no member {customer_id}")
    rows = await repo.for_member(
        conn,
        store_id=store_id,
        customer_id=customer_id,
        statuses=None if status is None else [status],
        limit=limit,
    )
    items = [as_case(row, now=now) for row in rows]
    items.sort(key=lambda case: (not case.breached, case.resolution_due))
    return CaseList(items=items)


async def add_event(
    conn: Connection, *, store_id: str, case_id: str, data: CaseEventCreate, actor: str, now: datetime
) -> Case:
    """Add a note, response or status change to the case's timeline (row-locked); emits `case.updated`."""
    row = await repo.lock(conn, store_id=store_id, case_id=case_id)
    if row is None:
        raise NotFound(f"no case {case_id}")
    if data.kind == "status" and data.status is None:
        raise InvalidInput("a status event needs a status", field="status")
    if data.kind != "status" and data.body is None:
        raise InvalidInput(f"a {data.kind} needs a body", field="body")
    changes: dict[str, object] = {"updated_at": now}
    if data.kind == "response" and row.first_response_at is None:
        changes["first_response_at"] = now
        changes["first_response_breached"] = row.first_response_breached or now > row.first_response_due
    if data.status is not None and data.status != row.status:
        if data.status not in TRANSITIONS[row.status]:
            raise Conflict(
                f"a {row.status} case cannot become {data.status}", code_detail="invalid-transition"
            )
        changes |= await _status_changes(conn, store_id, row, data.status, now)
    saved = await repo.save(conn, store_id=store_id, case=msgspec.structs.replace(row, **changes))
    await repo.add_event(
        conn,
        store_id=store_id,
        case_id=case_id,
        customer_id=row.customer_id,
        kind=data.kind,
        channel=data.channel,
        actor=actor,
        body=data.body,
        status=data.status,
        at=now,
    )
    case = as_case(saved, now=now)
    await outbox.emit(
        conn, store_id=store_id, customer_id=row.customer_id, event_type="case.updated", data=_payload(case)
    )
    return case


async def _status_changes(
    conn: Connection, store_id: str, row: CaseRow, status: str, now: datetime
) -> dict[str, object]:
    changes: dict[str, object] = {"status": status}
    if status == "resolved":
        changes |= {
            "resolved_at": now,
            "resolution_breached": row.resolution_breached or now > row.resolution_due,
        }
    elif status == "closed":
        changes |= {"closed_at": now}
        if row.resolved_at is None:
            changes |= {
                "resolved_at": now,
                "resolution_breached": row.resolution_breached or now > row.resolution_due,
            }
    elif status == "open" and row.status in ("resolved", "closed"):
        # A reopened case gets a fresh resolution promise from now, by its priority's target.
        store_policy = await policy(conn, store_id=store_id)
        priority: Priority = row.priority  # type: ignore[assignment]
        target = store_policy.targets.get(priority) or sla.DEFAULT_POLICY.targets[priority]
        due = sla.due_after(
            store_policy, target, now, target.resolution_minutes, await _timezone(conn, store_id)
        )
        changes |= {"resolved_at": None, "closed_at": None, "resolution_due": due}
    return changes


async def rate(
    conn: Connection,
    *,
    store_id: str,
    case_id: str,
    data: SatisfactionCreate,
    customer_id: str | None,
    channel: str,
    actor: str,
    now: datetime,
) -> Case:
    """Record the customer's satisfaction with a resolved (or closed) case; the latest rating counts."""
    row = await repo.lock(conn, store_id=store_id, case_id=case_id)
    if row is None or (customer_id is not None and row.customer_id != customer_id):
        raise NotFound(f"no case {case_id}")
    if row.status not in ("resolved", "closed"):
        raise Conflict("a case is rated once it is resolved", code_detail="not-resolved")
    changed = msgspec.structs.replace(
        row, satisfaction_score=data.score, satisfaction_comment=data.comment, updated_at=now
    )
    saved = await repo.save(conn, store_id=store_id, case=changed)
    await repo.add_event(
        conn,
        store_id=store_id,
        case_id=case_id,
        customer_id=row.customer_id,
        kind="satisfaction",
        channel=channel,
        actor=actor,
        body=f"{data.score}/5" + (f": {data.comment}" if data.comment else ""),
        status=None,
        at=now,
    )
    case = as_case(saved, now=now)
    await outbox.emit(
        conn, store_id=store_id, customer_id=row.customer_id, event_type="case.updated", data=_payload(case)
    )
    return case


async def flag_breaches(conn: Connection, *, store_id: str | None, now: datetime, limit: int) -> int:
    """Flag up to `limit` cases whose promises fell due, log and emit `case.updated` for each; how many."""
    flagged = await repo.flag_breaches(conn, store_id=store_id, now=now, limit=limit)
    if not flagged:
        return 0
    described = []
    for case_store, row in flagged:
        late = [
            name
            for name, late in (
                ("first response", row.first_response_breached and row.first_response_at is None),
                ("resolution", row.resolution_breached),
            )
            if late
        ]
        described.append((case_store, row, "promise broken: " + " and ".join(late)))
    await repo.log_breaches(conn, breaches=described, at=now)
    by_store: dict[str, list[tuple[str, dict[str, object]]]] = {}
    for case_store, row in flagged:
        by_store.setdefault(case_store, []).append((row.customer_id, _payload(as_case(row, now=now))))
    for case_store, events in by_store.items():
        await outbox.emit_many(conn, store_id=case_store, event_type="case.updated", events=events)
    return len(flagged)


def _metrics(row: MetricsRow) -> CaseMetrics:
    return CaseMetrics(
        **msgspec.structs.asdict(row), breach_rate=row.breached / row.cases if row.cases else None
    )


async def metrics(conn: Connection, *, store_id: str, now: datetime, days: int) -> MetricsReport:
    """Open cases, median first response, breach rate and mean satisfaction of cases opened in the
    last `days` days, overall and by channel and by category."""
    since = now - timedelta(days=days)
    rows = await repo.metrics(conn, store_id=store_id, since=since)
    total = next((row for row in rows if row.channel is None and row.category is None), None)
    empty = CaseMetrics(
        channel=None,
        category=None,
        cases=0,
        open=0,
        median_first_response_seconds=None,
        breached=0,
        breach_rate=None,
        mean_satisfaction=None,
        rated=0,
    )
    return MetricsReport(
        since=since,
        total=_metrics(total) if total is not None else empty,
        by_channel=sorted(
            (_metrics(row) for row in rows if row.channel is not None), key=lambda m: m.channel or ""
        ),
        by_category=sorted(
            (_metrics(row) for row in rows if row.category is not None), key=lambda m: m.category or ""
        ),
    )
