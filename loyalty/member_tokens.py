"""Member tokens: an app acts for one member with a short-lived token the storefront gets for it.

Format: `mt_<payload>.<mac>`, both base64url without padding. The payload is the JSON of
`{"v": 1, "s": store_id, "c": customer_id, "e": expiry in unix seconds}`; the MAC is HMAC-SHA256
of `patron.member-token.v1.<payload>` under the store's own `member_token_secret` (not the
webhook secret, which the storefront holds too).

Stateless on purpose: issuing writes nothing and checking needs only the store's secret (which
callers cache), so a storefront may ask for a token per session without growing a table. The
price is that one token cannot be revoked alone: tokens are short-lived (an hour by default, a
day at most), and replacing the store's secret revokes all of them at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec
from msgspec import Meta

from loyalty.errors import NotFound
from loyalty.repository import Connection
from loyalty.repository import members as members_repo
from loyalty.repository import stores as stores_repo

PREFIX = "mt_"
_LABEL = b"patron.member-token.v1."
MAX_TOKEN_CHARS = 2048


class MemberTokenCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Options for a new member token (the body may be left out)."""

    ttl_seconds: Annotated[int, Meta(ge=60, le=86400)] = 3600
    """How long the token works."""


class MemberToken(msgspec.Struct, kw_only=True):
    """A bearer token with which an app reads and acts for this one member, until `expires_at`."""

    token: str
    expires_at: datetime


class Claims(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified token says."""

    store_id: str
    customer_id: str
    expires_at: datetime


class _Payload(msgspec.Struct, frozen=True):
    v: int
    s: str
    c: str
    e: int


_decode_payload = msgspec.json.Decoder(_Payload)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str) -> bytes:
    return hmac.new(secret, _LABEL + payload.encode(), hashlib.sha256).digest()


def sign(secret: bytes, *, store_id: str, customer_id: str, expires_at: datetime) -> str:
    """A token for the member, valid until `expires_at` (whole seconds)."""
    payload = _b64(msgspec.json.encode(_Payload(1, store_id, customer_id, int(expires_at.timestamp()))))
    return f"{PREFIX}{payload}.{_b64(_mac(secret, payload))}"


def _split(token: str) -> tuple[str, bytes, _Payload] | None:
    if not token.startswith(PREFIX) or len(token) > MAX_TOKEN_CHARS:
        return None
    payload, dot, mac = token.removeprefix(PREFIX).partition(".")
    if not dot:
        return None
    try:
        return payload, _unb64(mac), _decode_payload.decode(_unb64(payload))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None


def claimed_store(token: str) -> str | None:
    """The store a token names, not yet verified: which secret to check it with."""
    parts = _split(token)
    return None if parts is None else parts[2].s


def verify(token: str, *, secret: bytes, now: datetime) -> Claims | None:
    """The token's claims when its MAC is right (compared in constant time) and it has not expired."""
    parts = _split(token)
    if parts is None:
        return None
    payload, mac, claims = parts
    if not hmac.compare_digest(mac, _mac(secret, payload)) or claims.v != 1:
        return None
    expires_at = datetime.fromtimestamp(claims.e, UTC)
    if expires_at <= now:
        return None
    return Claims(store_id=claims.s, customer_id=claims.c, expires_at=expires_at)


async def issue(
    conn: Connection, *, store_id: str, customer_id: str, now: datetime, ttl_seconds: int
) -> MemberToken:
    """A token for a known member of the store (NotFound otherwise: a token needs a member)."""
    if await members_repo.find(conn, store_id=store_id, customer_id=customer_id) is None:
        raise NotFound(f"no member {customer_id}")
    secret = await stores_repo.member_token_secret(conn, store_id=store_id)
    if secret is None:
        raise NotFound(f"no store {store_id}")
    expires_at = (now + timedelta(seconds=ttl_seconds)).replace(microsecond=0)
    token = sign(secret, store_id=store_id, customer_id=customer_id, expires_at=expires_at)
    return MemberToken(token=token, expires_at=expires_at)
