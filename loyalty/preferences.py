"""Member preferences that every channel shares, each with its provenance.

A preference is kept as `{"value", "channel", "actor", "occurred_at"}`. A change carries the time it
happened (`occurred_at`, default: when it arrives); a change that happened before the kept value's
own `occurred_at` does not overwrite it — an offline till syncing hours later must not undo what
the customer said on the app meanwhile. Every change is logged as it arrived, applied or not, for
the member's timeline.

`If-Match` takes the ETag of the preferences (not of the whole profile): a till editing sizes must
not get a 412 because an order just earned points.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from loyalty.errors import NotFound, PreconditionFailed
from loyalty.limits import refuse_unstorable
from loyalty.repository import Connection
from loyalty.repository import preferences as repo

Short = Annotated[str, Meta(min_length=1, max_length=100)]
Channel = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_-]*$")]
ContactChannel = Literal["email", "sms", "phone", "app", "post", "whatsapp"]
Tags = Annotated[list[Short], Meta(max_length=50)]


class PreferencesUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A change to some preferences, made on `channel`; keys left out stay as they are.

    A list or `sizes` given here replaces the kept one. `occurred_at` is when the customer said it
    (default: now); a change older than the kept value of a key leaves that key alone.
    """

    channel: Channel
    """Where the change was made: `web`, `app`, `till`, `call_centre`, `chat`, …"""
    occurred_at: datetime | None = None
    language: Annotated[str, Meta(min_length=2, max_length=35)] | UnsetType = UNSET
    """A BCP 47 language tag, e.g. `de-DE`."""
    contact_channel: ContactChannel | UnsetType = UNSET
    contact_hours: (
        Annotated[str, Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")] | UnsetType
    ) = UNSET
    """Local hours the customer may be contacted, `HH:MM-HH:MM`."""
    do_not_contact: bool | UnsetType = UNSET
    sizes: Annotated[dict[Short, Short], Meta(max_length=30)] | UnsetType = UNSET
    """Sizes by garment or kind, e.g. `{"shoes": "42", "shirt": "M"}`."""
    favourite_categories: Tags | UnsetType = UNSET
    dietary: Tags | UnsetType = UNSET
    """Dietary needs and allergies, e.g. `["vegan", "nut allergy"]`."""
    gift_wrap: bool | UnsetType = UNSET
    tags: Tags | UnsetType = UNSET
    """Free tags any channel may set."""


KEYS = tuple(name for name in PreferencesUpdate.__struct_fields__ if name not in ("channel", "occurred_at"))


class Preference(msgspec.Struct, kw_only=True):
    """One preference and where it came from."""

    value: Any
    channel: str
    actor: str
    """Who made the change: `member:<customer_id>` for the member's own app, else `<scope>:<key id>`."""
    occurred_at: datetime


class PreferencesView(msgspec.Struct, kw_only=True):
    """The member's preferences by key; `ignored` names keys of this change that were older than
    the kept values and so left alone."""

    preferences: dict[str, Preference]
    ignored: list[str] = msgspec.field(default_factory=list)


class TimelineEntry(msgspec.Struct, kw_only=True):
    """A change to the member, as it arrived: a preference (applied or not) or a service case event."""

    at: datetime
    kind: str
    """`preference` or `case.<event kind>`."""
    channel: str
    actor: str
    key: str | None = None
    value: Any = None
    applied: bool = True
    case_id: str | None = None
    occurred_at: datetime | None = None


def decode(stored: dict[str, Any]) -> dict[str, Preference]:
    """Stored jsonb → Preference structs, keys in a stable order."""
    return {key: msgspec.convert(stored[key], Preference) for key in sorted(stored)}


def etag(stored: dict[str, Any]) -> str:
    """The preferences' ETag: it changes whenever a value or its provenance does."""
    return '"p' + hashlib.sha256(msgspec.json.encode(stored, order="sorted")).hexdigest()[:32] + '"'


def _matches(if_match: str, tag: str) -> bool:
    candidates = [item.strip() for item in if_match.split(",")]
    return "*" in candidates or tag in candidates


async def current(conn: Connection, *, store_id: str, customer_id: str) -> tuple[PreferencesView, str]:
    """The member's preferences and their ETag; NotFound for an unknown or erased member."""
    stored = await repo.get(conn, store_id=store_id, customer_id=customer_id)
    if stored is None:
        raise NotFound(f"no member {customer_id}")
    return PreferencesView(preferences=decode(stored)), etag(stored)


async def update(
    conn: Connection,
    *,
    store_id: str,
    customer_id: str,
    data: PreferencesUpdate,
    actor: str,
    if_match: str | None,
    now: datetime,
) -> tuple[PreferencesView, str]:
    """Merge a change into the member's preferences (row-locked), log it, return the result and ETag.

    412 when `if_match` is given and no longer names the kept preferences.
    """
    refuse_unstorable(data, "data")
    stored = await repo.lock(conn, store_id=store_id, customer_id=customer_id)
    if stored is None:
        raise NotFound(f"no member {customer_id}")
    if if_match is not None and not _matches(if_match, etag(stored)):
        raise PreconditionFailed("the preferences changed since they were read; read them again")
    occurred_at = data.occurred_at or now
    changes: list[tuple[str, Any, bool]] = []
    ignored: list[str] = []
    for key in KEYS:
        value = getattr(data, key)
        if value is UNSET:
            continue
        kept = stored.get(key)
        applies = kept is None or msgspec.convert(kept["occurred_at"], datetime) <= occurred_at
        changes.append((key, value, applies))
        if applies:
            stored[key] = {
                "value": value,
                "channel": data.channel,
                "actor": actor,
                "occurred_at": occurred_at,
            }
        else:
            ignored.append(key)
    if changes:
        if len(ignored) < len(changes):
            await repo.store(conn, store_id=store_id, customer_id=customer_id, preferences=stored)
        await repo.log_changes(
            conn,
            store_id=store_id,
            customer_id=customer_id,
            channel=data.channel,
            actor=actor,
            occurred_at=occurred_at,
            changes=changes,
        )
    # Round-trip through JSON so the ETag is computed on what a later read will see.
    stored = msgspec.json.decode(msgspec.json.encode(stored))
    return PreferencesView(preferences=decode(stored), ignored=ignored), etag(stored)


def view_etag(view: PreferencesView) -> str:
    """The ETag of the preferences a view shows (the same as `etag` of what is stored)."""
    return etag(msgspec.to_builtins(view.preferences))
