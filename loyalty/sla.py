"""Service-level promises: per-priority targets, optionally counted in the store's business hours.

Pure: no I/O. A target in business hours counts only the minutes the store is open (its days and
hours, in its own time zone), so a ticket opened on Friday evening is due on Monday, and a
daylight-saving switch does not move the promise by an hour.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import msgspec
from msgspec import Meta

from loyalty.errors import InvalidInput

Priority = Literal["low", "normal", "high", "urgent"]
PRIORITIES: tuple[Priority, ...] = ("low", "normal", "high", "urgent")
Minutes = Annotated[int, Meta(gt=0, le=60 * 24 * 366)]
ClockTime = Annotated[str, Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class SlaTarget(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How soon a case of one priority gets its first response and its resolution."""

    first_response_minutes: Minutes
    resolution_minutes: Minutes
    business_hours: bool = False
    """Count only the store's business hours (in its time zone), not the clock."""


class BusinessHours(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """When the store's service desk works: ISO weekdays (1 = Monday) and local opening hours."""

    days: Annotated[list[Annotated[int, Meta(ge=1, le=7)]], Meta(min_length=1, max_length=7)] = msgspec.field(
        default_factory=lambda: [1, 2, 3, 4, 5]
    )
    start: ClockTime = "09:00"
    end: ClockTime = "17:00"


def _default_targets() -> dict[str, SlaTarget]:
    return {
        "urgent": SlaTarget(first_response_minutes=60, resolution_minutes=8 * 60),
        "high": SlaTarget(first_response_minutes=4 * 60, resolution_minutes=24 * 60),
        "normal": SlaTarget(first_response_minutes=8 * 60, resolution_minutes=24 * 60, business_hours=True),
        "low": SlaTarget(first_response_minutes=16 * 60, resolution_minutes=40 * 60, business_hours=True),
    }


class SlaPolicy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A store's promises: one target per priority (all four), and its business hours.

    Defaults: urgent 1 h / 8 h and high 4 h / 24 h around the clock; normal 8 h / 24 h and low
    16 h / 40 h in business hours (Monday to Friday, 09:00-17:00 in the store's time zone).
    """

    targets: dict[Priority, SlaTarget] = msgspec.field(default_factory=_default_targets)  # type: ignore[arg-type]
    business_hours: BusinessHours = msgspec.field(default_factory=BusinessHours)


DEFAULT_POLICY = SlaPolicy()


def validate(policy: SlaPolicy) -> SlaPolicy:
    """A policy with a target for every priority and opening hours that open before they close."""
    missing = [priority for priority in PRIORITIES if priority not in policy.targets]
    if missing:
        raise InvalidInput(f"targets missing for {', '.join(missing)}", field="targets")
    if _clock(policy.business_hours.start) >= _clock(policy.business_hours.end):
        raise InvalidInput("business hours must start before they end", field="business_hours")
    return policy


def _clock(text: str) -> time:
    match = re.fullmatch(r"(\d\d):(\d\d)", text)
    assert match is not None  # the Struct's pattern guarantees it
    return time(int(match[1]), int(match[2]))


def add_business_minutes(start: datetime, minutes: int, hours: BusinessHours, zone: ZoneInfo) -> datetime:
    """`start` plus `minutes` of open time (in UTC): closed days and hours do not count.

    Each open interval is measured in UTC, so a daylight-saving change inside it is counted as the
    real time it is.
    """
    remaining = timedelta(minutes=minutes)
    opens, closes = _clock(hours.start), _clock(hours.end)
    days = set(hours.days)
    day: date = start.astimezone(zone).date()
    while True:
        if day.isoweekday() in days:
            open_at = datetime.combine(day, opens, zone).astimezone(UTC)
            close_at = datetime.combine(day, closes, zone).astimezone(UTC)
            begin = max(open_at, start.astimezone(UTC))
            if begin < close_at:
                if remaining <= close_at - begin:
                    return begin + remaining
                remaining -= close_at - begin
        day += timedelta(days=1)


class Due(msgspec.Struct, frozen=True, kw_only=True):
    first_response_due: datetime
    resolution_due: datetime


def due_times(policy: SlaPolicy, *, priority: Priority, opened_at: datetime, timezone: str) -> Due:
    """When the first response and the resolution of a case opened at `opened_at` are promised."""
    target = policy.targets.get(priority) or DEFAULT_POLICY.targets[priority]
    return Due(
        first_response_due=due_after(policy, target, opened_at, target.first_response_minutes, timezone),
        resolution_due=due_after(policy, target, opened_at, target.resolution_minutes, timezone),
    )


def due_after(policy: SlaPolicy, target: SlaTarget, start: datetime, minutes: int, timezone: str) -> datetime:
    """`start` plus `minutes`, on the clock or in business hours as the target says."""
    if not target.business_hours:
        return start.astimezone(UTC) + timedelta(minutes=minutes)
    return add_business_minutes(start, minutes, policy.business_hours, ZoneInfo(timezone))
