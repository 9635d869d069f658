"""Checking member tokens on each request: the MAC in-process, the store's secret from a small cache."""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime

import asyncpg

from loyalty import member_tokens
from loyalty.repository import stores as stores_repo
from loyalty.stores import Principal, Scope

MEMBER_TOKEN_KEY_ID = "member-token"  # noqa: S105 - a label, not a secret
"""The `key_id` of a Principal made from a member token (it has no API key row)."""


class MemberTokenResolver:
    """Turns a member token into a Principal of scope `app` bound to one customer.

    Store secrets are cached for `ttl` seconds (unknown stores too, bounded), so a replaced
    secret revokes the store's tokens everywhere within that time.
    """

    def __init__(self, *, ttl: float = 30.0, max_stores: int = 10_000) -> None:
        self._ttl = ttl
        self._max_stores = max_stores
        self._secrets: OrderedDict[str, tuple[float, bytes | None]] = OrderedDict()

    async def _secret(self, pool: asyncpg.Pool, store_id: str) -> bytes | None:
        cached = self._secrets.get(store_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with pool.acquire() as conn:
            secret = await stores_repo.member_token_secret(conn, store_id=store_id)
        self._secrets[store_id] = (time.monotonic() + self._ttl, secret)
        self._secrets.move_to_end(store_id)
        while len(self._secrets) > self._max_stores:
            self._secrets.popitem(last=False)
        return secret

    async def resolve(self, token: str, *, pool: asyncpg.Pool, now: datetime) -> Principal | None:
        """The member's Principal, or None for a malformed, forged or expired token."""
        store_id = member_tokens.claimed_store(token)
        if store_id is None:
            return None
        secret = await self._secret(pool, store_id)
        if secret is None:
            return None
        claims = member_tokens.verify(token, secret=secret, now=now)
        if claims is None:
            return None
        return Principal(
            store_id=claims.store_id,
            scope=Scope.app,
            key_id=MEMBER_TOKEN_KEY_ID,
            customer_id=claims.customer_id,
            expires_at=claims.expires_at,
        )

    def forget(self, store_id: str) -> None:
        """Drop a store's cached secret (after replacing it)."""
        self._secrets.pop(store_id, None)
