"""A store's platform connections: the secrets its webhooks are signed with (the Standard Webhooks
`whsec_` secret, Shopify's and WooCommerce's; each rotated with two valid at once), and the REST
credentials reconciliation reads WooCommerce with.

Rotation: the new secret is current at once; the one it replaces keeps verifying for a grace
period (48 hours by default: deliveries signed before the switch, and Shopify's retries of
them, still pass), then stops by itself. A rotation with `grace_seconds: 0` ends the old secret
at once, and the next rotation drops whatever previous secret is left, so at most two are valid.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from hooks import signing
from hooks.repository import platforms as repo
from hooks.signing import InvalidSignature
from loyalty.errors import InvalidInput, NotFound
from loyalty.repository import Connection
from loyalty.repository.stores import StoreRow

Platform = Literal["shopify", "woocommerce"]
Signer = Literal["standard", "shopify", "woocommerce"]
"""Whose scheme an inbound webhook is signed with: Patron's own (Standard Webhooks) or a platform's."""
T = TypeVar("T")

DEFAULT_GRACE_SECONDS = 48 * 3600


class PlatformSecretRotation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Make `secret` the platform's current webhook secret; the one it replaces stays valid for
    `grace_seconds` (0: not at all)."""

    platform: Signer
    secret: Annotated[str, Meta(min_length=1, max_length=500)] | None = None
    """The new secret: the one Shopify or WooCommerce shows (required for them). For `standard`,
    a `whsec_` secret; left out, Patron makes one."""
    grace_seconds: Annotated[int, Meta(ge=0, le=30 * 86400)] = DEFAULT_GRACE_SECONDS


class PlatformSecretRotated(msgspec.Struct, kw_only=True):
    """The rotation done. Signatures with the previous secret verify until `previous_valid_until`."""

    platform: Signer
    previous_valid_until: datetime | None
    secret: str | UnsetType = UNSET
    """The new `standard` secret Patron made (shown only here)."""


class WooCommerceApi(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """WooCommerce REST API credentials (WooCommerce > Settings > Advanced > REST API, read access)."""

    site_url: Annotated[
        str, Meta(pattern=r"^https?://[^\s/]+", max_length=500, examples=["https://shop.example"])
    ]
    consumer_key: Annotated[str, Meta(min_length=1, max_length=200)]
    consumer_secret: Annotated[str, Meta(min_length=1, max_length=200)]


class WooCommerceApiSaved(msgspec.Struct, kw_only=True):
    """The credentials kept (the consumer secret is never shown again)."""

    site_url: str
    consumer_key: str


async def rotate_secret(
    conn: Connection, *, store_id: str, rotation: PlatformSecretRotation, now: datetime
) -> PlatformSecretRotated:
    """Switch the platform's webhook secret, keeping the outgoing one valid for the grace period."""
    secret, made = rotation.secret, False
    if rotation.platform != "standard":
        if secret is None:
            raise InvalidInput(f"the new {rotation.platform} secret is required", field="secret")
    elif secret is None:
        secret, made = signing.new_secret(), True
    elif not signing.is_secret(secret):
        raise InvalidInput("a standard secret is whsec_ and the base64 of 16 bytes or more", field="secret")
    until = now + timedelta(seconds=rotation.grace_seconds) if rotation.grace_seconds else None
    found, kept = await repo.rotate_secret(
        conn, store_id=store_id, platform=rotation.platform, secret=secret, previous_until=until
    )
    if not found:
        raise NotFound(f"no store {store_id}")
    return PlatformSecretRotated(
        platform=rotation.platform,
        previous_valid_until=until if kept else None,
        secret=secret if made else UNSET,
    )


def current_secret(store: StoreRow, platform: Signer) -> str | None:
    return store.webhook_secret if platform == "standard" else store.platform_secrets.get(platform)


def check_current(store: StoreRow, platform: Signer, check: Callable[[list[str]], T]) -> T:
    """Run `check` (which raises `InvalidSignature`) with the current secret only."""
    current = current_secret(store, platform)
    return check([current] if current else [])


async def verify(
    conn: Connection,
    *,
    store: StoreRow,
    platform: Signer,
    check: Callable[[list[str]], T],
    now: datetime,
) -> T:
    """Run `check` (which raises `InvalidSignature`) with the current secret, then the previous one.

    The previous secret is read only when the current one fails: a rotation costs nothing on the
    common path.
    """
    try:
        return check_current(store, platform, check)
    except InvalidSignature:
        previous = await repo.previous_secret(conn, store_id=store.store_id, platform=platform, now=now)
        if previous is None:
            raise
        return check([previous])


async def set_woocommerce_api(conn: Connection, *, store_id: str, api: WooCommerceApi) -> WooCommerceApiSaved:
    """Keep the store's WooCommerce REST credentials, replacing any before."""
    if not await repo.set_api(
        conn, store_id=store_id, platform="woocommerce", credentials=msgspec.to_builtins(api)
    ):
        raise NotFound(f"no store {store_id}")
    return WooCommerceApiSaved(site_url=api.site_url, consumer_key=api.consumer_key)


async def woocommerce_api(conn: Connection, *, store_id: str) -> WooCommerceApi | None:
    """The store's WooCommerce REST credentials, or None when none were given."""
    stored = await repo.api(conn, store_id=store_id, platform="woocommerce")
    return None if stored is None else msgspec.convert(stored, WooCommerceApi)
