"""Webhook endpoints: where a store's outbound events go, and which of them."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Literal, get_args

import msgspec
from msgspec import UNSET, Meta, UnsetType

from hooks import signing, targets
from hooks.repository import endpoints as repo
from hooks.repository.endpoints import EndpointRow
from loyalty.errors import NotFound
from loyalty.repository import Connection

EventType = Literal[
    "points.changed",
    "tier.changed",
    "reward.issued",
    "suggestion.created",
    "gift.triggered",
    "case.opened",
    "case.updated",
]
"""Every outbound event type; an endpoint subscribes to some of them."""

EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))

Url = Annotated[str, Meta(min_length=8, max_length=2000, examples=["https://shop.example/webhooks/patron"])]
Events = Annotated[list[EventType], Meta(min_length=1, max_length=len(EVENT_TYPES))]
Description = Annotated[str, Meta(max_length=500)]


class WebhookEndpointCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A URL to send outbound events to, and which events."""

    url: Url
    """http(s) URL; refused if its host resolves to a private, loopback or link-local address."""
    events: Events
    description: Description | None = None


class WebhookEndpointUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Change an endpoint; absent fields keep their value."""

    url: Url | UnsetType = UNSET
    events: Events | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET
    """False pauses deliveries to it; true resumes them (also after Patron disabled it on a 410)."""


class WebhookEndpoint(msgspec.Struct, kw_only=True):
    """A registered endpoint. Its secret is shown only when it is created."""

    endpoint_id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    """Why Patron disabled it (the receiver answered 410 Gone); null otherwise."""
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpoint, kw_only=True):
    """A new endpoint with its signing secret (verify deliveries with it; it is not shown again)."""

    secret: str


class WebhookEndpointPage(msgspec.Struct, kw_only=True):
    """A page of endpoints, oldest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[WebhookEndpoint]
    next_cursor: str | None


def _view(row: EndpointRow) -> WebhookEndpoint:
    return WebhookEndpoint(
        endpoint_id=row.endpoint_id,
        url=row.url,
        events=row.events,
        description=row.description,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _unique(events: list[EventType]) -> list[str]:
    return list(dict.fromkeys(events))


async def create(
    conn: Connection, *, store_id: str, data: WebhookEndpointCreate, allow_private: bool
) -> WebhookEndpointCreated:
    """Register an endpoint with a fresh `whsec_` secret."""
    await targets.check_url(data.url, allow_private=allow_private)
    row = await repo.insert(
        conn,
        endpoint_id="we_" + secrets.token_hex(8),
        store_id=store_id,
        url=data.url,
        events=_unique(data.events),
        description=data.description,
        secret=signing.new_secret(),
    )
    return WebhookEndpointCreated(**msgspec.structs.asdict(_view(row)), secret=row.secret)


async def get(conn: Connection, *, store_id: str, endpoint_id: str) -> WebhookEndpoint:
    row = await repo.get(conn, store_id=store_id, endpoint_id=endpoint_id)
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return _view(row)


async def page(
    conn: Connection, *, store_id: str, after: tuple[datetime, str] | None, limit: int
) -> tuple[list[WebhookEndpoint], tuple[datetime, str] | None]:
    """A page of endpoints and the keyset position after its last one (None: no more)."""
    rows = await repo.page(conn, store_id=store_id, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    position = (rows[-1].created_at, rows[-1].endpoint_id) if more else None
    return [_view(row) for row in rows], position


async def update(
    conn: Connection, *, store_id: str, endpoint_id: str, data: WebhookEndpointUpdate, allow_private: bool
) -> WebhookEndpoint:
    if not isinstance(data.url, UnsetType):
        await targets.check_url(data.url, allow_private=allow_private)
    row = await repo.update(
        conn,
        store_id=store_id,
        endpoint_id=endpoint_id,
        url=None if isinstance(data.url, UnsetType) else data.url,
        events=None if isinstance(data.events, UnsetType) else _unique(data.events),
        set_description=not isinstance(data.description, UnsetType),
        description=None if isinstance(data.description, UnsetType) else data.description,
        enabled=None if isinstance(data.enabled, UnsetType) else data.enabled,
    )
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return _view(row)


async def delete(conn: Connection, *, store_id: str, endpoint_id: str) -> None:
    """Delete an endpoint and its delivery history."""
    if not await repo.delete(conn, store_id=store_id, endpoint_id=endpoint_id):
        raise NotFound(f"no webhook endpoint {endpoint_id}")
