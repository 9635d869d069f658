"""The store rows webhook routes verify and translate with, kept in-process for a few seconds.

Every delivery needs its store's secrets, currency and time zone before anything else; reading
them per request was a round trip in the hot path. A cached row can be stale only in its secrets
(currency and time zone are fixed at creation). A route that fails a signature check with a
cached row asks again with `fresh=True` once, so a just-rotated secret costs one extra lookup; and
a rotation is published on Redis (`publish_change`), so every process drops the row and a secret
rotated out without grace stops verifying at once, not a TTL later.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable

from redis.asyncio import Redis

from loyalty.repository import Connection
from loyalty.repository import stores as stores_repo
from loyalty.repository.stores import StoreRow

TTL_SECONDS = 10.0
MAX_STORES = 4096
CHANGED_CHANNEL = "patron:stores:changed"


async def publish_change(redis: Redis, store_id: str) -> None:
    """Tell every process's cache that the store's secrets changed (best effort: the TTL bounds it)."""
    with contextlib.suppress(Exception):
        await redis.publish(CHANGED_CHANNEL, store_id)


class StoreCache:
    """Store rows by id for `ttl` seconds; an unknown store is never cached."""

    def __init__(self, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._rows: OrderedDict[str, tuple[float, StoreRow]] = OrderedDict()
        # Bumped by every eviction: a lookup that overlapped one may have read what it evicted.
        self._evictions = 0

    def cached(self, store_id: str) -> StoreRow | None:
        """The store's row if it is kept and fresh enough, without asking PostgreSQL."""
        kept = self._rows.get(store_id)
        return kept[1] if kept is not None and self._clock() - kept[0] < self._ttl else None

    async def get(
        self, conn: Connection, store_id: str, *, fresh: bool = False
    ) -> tuple[StoreRow | None, bool]:
        """The store (None: no such store) and whether it came from the cache."""
        cached = None if fresh else self.cached(store_id)
        if cached is not None:
            return cached, True
        now = self._clock()
        evictions = self._evictions
        store = await stores_repo.get_store(conn, store_id=store_id)
        if store is None:
            self._rows.pop(store_id, None)
            return None, False
        if evictions != self._evictions:
            return store, False
        self._rows[store_id] = (now, store)
        self._rows.move_to_end(store_id)
        while len(self._rows) > MAX_STORES:
            self._rows.popitem(last=False)
        return store, False

    def evict(self, store_id: str | None = None) -> None:
        """Forget the store's row (every row for None)."""
        self._evictions += 1
        if store_id is None:
            self._rows.clear()
        else:
            self._rows.pop(store_id, None)
