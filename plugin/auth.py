"""Who is calling: API keys (cached, revocation pushed through Redis) and the operator token."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import asyncpg
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from redis.asyncio import Redis

from loyalty import member_tokens, stores
from loyalty.errors import NotFound
from loyalty.stores import Principal, Scope
from plugin import redis_link

log = logging.getLogger(__name__)

REVOKED_CHANNEL = "patron:keys:revoked"
EXCLUDE_FROM_AUTH = "exclude_from_auth"
SCOPES = "scopes"
OWN_MEMBER = "own_member"
"""Route `opt` flag for routes under `/v1/members/{cid}`: a member token acts for its own member only."""
WEBHOOK_LIMIT = "webhook_limit"
"""Route `opt` flag for inbound webhooks: no API key, but counted against the webhook rate limit of
the store in the `store_id` path parameter."""
WEBHOOK_PLATFORM = "webhook_platform"
"""Route `opt`: the platform an inbound webhook route serves, for its metrics."""


def webhook(platform: str) -> dict[str, Any]:
    """The `opt` of an inbound webhook route (authenticated by its signature, in the handler)."""
    return {EXCLUDE_FROM_AUTH: True, WEBHOOK_LIMIT: True, WEBHOOK_PLATFORM: platform}


APP_KEY = "app_key"
"""Route `opt` flag (set by `requires(..., app_key=True)`) letting an app's own API key through.
Elsewhere scope `app` means a member token: an app key ships inside the app, where anyone can read it,
so it must not read or act for members."""

AnyConnection = ASGIConnection[Any, Any, Any, Any]


class KeyResolver:
    """Turns an API key into its Principal, asking PostgreSQL at most once per key per `ttl` seconds.

    Unknown keys are cached too (bounded), so a flood of bad keys does not become a flood of queries.
    Revocations are published on Redis and evicted at once by every process.
    """

    def __init__(self, pool: asyncpg.Pool, *, ttl: float, max_size: int = 50_000) -> None:
        self._pool = pool
        self._ttl = ttl
        self._max_size = max_size
        self._entries: OrderedDict[bytes, tuple[float, Principal | None]] = OrderedDict()
        # Bumped by every eviction: a lookup that overlapped one may have read what it evicted.
        self._evictions = 0
        self.following = asyncio.Event()
        """Set while this resolver hears revocations (other processes' included) as they happen."""

    async def resolve(self, api_key: str) -> Principal | None:
        key_hash = stores.hash_key(api_key)
        cached = self._entries.get(key_hash)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        evictions = self._evictions
        async with self._pool.acquire() as conn:
            principal = await stores.authenticate(conn, api_key)
        if evictions != self._evictions:
            return principal
        trust_for = self._ttl
        if principal is not None and principal.expires_at is not None:
            # A rotated key: trust the cache no longer than the key itself lives.
            trust_for = min(trust_for, (principal.expires_at - datetime.now(UTC)).total_seconds())
        self._entries[key_hash] = (time.monotonic() + trust_for, principal)
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)
        return principal

    def evict(self, key_hash: bytes) -> None:
        self._evictions += 1
        self._entries.pop(key_hash, None)

    def _evict_all(self) -> None:
        self._evictions += 1
        self._entries.clear()

    async def follow_revocations(self, redis: Redis) -> None:
        """Evict keys revoked by any process, until cancelled. Revocations published while this was
        not listening are lost, so it then drops every key it trusted (the TTL bounds the rest)."""
        await redis_link.follow_channel(
            redis,
            REVOKED_CHANNEL,
            on_message=lambda data: self.evict(bytes.fromhex(data.decode())),
            on_gap=self._evict_all,
            what="key revocation",
            listening=self.following,
        )


async def publish_revocation(redis: Redis, key_hash: bytes) -> None:
    with contextlib.suppress(Exception):
        await redis.publish(REVOKED_CHANNEL, key_hash.hex())


def bearer_token(connection: AnyConnection) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def requires(*scopes: Scope, app_key: bool = False) -> dict[str, Any]:
    """Route `opt` letting through keys of the given scopes only: `@get(..., opt=requires(Scope.app))`.

    `Scope.app` lets through member tokens (an app acting for one member); the app's own API key
    too only with `app_key=True`. `authenticate` checks it, rather than a guard of its own: Litestar
    copies the route handler for every guard on every request, which cost as much as the rest of
    the auth together.
    """
    opt: dict[str, Any] = {SCOPES: frozenset(scopes)}
    if app_key:
        opt[APP_KEY] = True
    return opt


# Guards are coroutines even when they do no I/O: Litestar runs a plain-function guard in a worker
# thread, a thread hop on every request.
async def authenticate(connection: AnyConnection, handler: BaseRouteHandler) -> None:
    """Router-wide guard: resolves the bearer API key or member token into `request.auth` (or answers
    401), then checks its scope against the route's `requires(...)` (or answers 403).

    Then it counts the request against its rate limits (or answers 429): after authorization, so
    that refused requests spend nobody's budget. A guard rather than a middleware so that its
    answers go through the route's error handling and middleware (request id, metrics) like any
    other response. Routes with `exclude_from_auth` skip it (inbound webhooks count against their
    store's webhook limit only).
    """
    runtime = connection.app.state.patron
    if handler.opt.get(EXCLUDE_FROM_AUTH):
        if handler.opt.get(WEBHOOK_LIMIT):
            runtime.limits.check_webhook(connection.path_params["store_id"])
        return
    token = bearer_token(connection)
    if token is None:
        raise NotAuthorizedException("an API key is required: Authorization: Bearer <key>")
    if token.startswith(member_tokens.PREFIX):
        principal = await runtime.member_tokens.resolve(token, pool=runtime.pool, now=runtime.clock())
        if principal is None:
            raise NotAuthorizedException("the member token is invalid or expired")
    else:
        principal = await runtime.keys.resolve(token)
    if principal is None:
        raise NotAuthorizedException("the API key is unknown, expired or revoked")
    connection.scope["auth"] = principal
    _authorize(principal, connection, handler.opt)
    runtime.limits.check(principal)


def _authorize(principal: Principal, connection: AnyConnection, opt: dict[str, Any]) -> None:
    """Every rule a route declares in its `opt`, checked in one place (one guard per request)."""
    allowed: frozenset[Scope] | None = opt.get(SCOPES)
    if allowed is not None and principal.scope not in allowed:
        names = ", ".join(sorted(scope.value for scope in allowed))
        raise PermissionDeniedException(f"this route needs a key of scope {names}")
    if principal.scope == Scope.app and principal.customer_id is None and not opt.get(APP_KEY):
        raise PermissionDeniedException("an app acts for a member with a member token, not its API key")
    if opt.get(OWN_MEMBER):
        member_access(principal, connection.path_params["cid"])


def member_access(principal: Principal, customer_id: str) -> None:
    """Refuse a member token acting for another member than its own.

    404, worded exactly as for an unknown member, rather than 403: a member token must not learn
    which other customer ids exist. API keys (no `customer_id`) see every member of their store.
    """
    if principal.customer_id is not None and principal.customer_id != customer_id:
        raise NotFound(f"no member {customer_id}")


def actor_of(principal: Principal) -> str:
    """Who made a change, for provenance and timelines: the member themselves (a member token)
    or the API key (`<scope>:<key id>`)."""
    if principal.customer_id is not None:
        return f"member:{principal.customer_id}"
    return f"{principal.scope.value}:{principal.key_id}"


async def operator_guard(connection: AnyConnection, _: BaseRouteHandler) -> None:
    """Lets through the operator token (`PATRON_ADMIN_TOKEN`); operator routes are off without one."""
    expected = connection.app.state.patron.settings.admin_token
    if expected is None:
        raise NotAuthorizedException("operator endpoints are disabled: PATRON_ADMIN_TOKEN is not set")
    token = bearer_token(connection) or ""
    # Digests of one length: compare_digest on the tokens themselves would tell the token's length.
    if not hmac.compare_digest(_digest(token), _digest(expected)):
        raise NotAuthorizedException("the operator token is missing or wrong")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
