"""What a running Patron process holds: settings, the pool, Redis, the key resolver, the rate limits,
the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from redis.asyncio import Redis

from hooks.store_cache import StoreCache
from plugin.auth import KeyResolver
from plugin.member_tokens import MemberTokenResolver
from plugin.member_versions import MemberVersions
from plugin.paid_batches import PaidOrderBatches
from plugin.rate_limits import RateLimiter
from plugin.redis_link import RedisBreaker
from plugin.settings import Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    keys: KeyResolver
    member_versions: MemberVersions
    limits: RateLimiter
    paid_orders: PaidOrderBatches
    """Paid-order deliveries of a store arriving together are applied in one transaction."""
    clock: Callable[[], datetime] = field(default=utc_now)
    """The one way code reads the time, so tests and `--now` can move it."""
    member_tokens: MemberTokenResolver = field(default_factory=MemberTokenResolver)
    hook_stores: StoreCache = field(default_factory=StoreCache)
    """Store rows for the Standard Webhooks route, kept a few seconds."""
    redis_breaker: RedisBreaker = field(default_factory=RedisBreaker)
    """Cache reads and writes go through it: skipped for a moment after Redis failed."""
