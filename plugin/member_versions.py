"""Member version lookups for the profile cache's freshness check, batched across requests.

Every profile read asks PostgreSQL for the member's version (plugin/profile_cache.py says why).
Reads that arrive in the same event-loop turn share one statement and one pooled connection, so
under load a read costs a fraction of a round trip. A read never joins a lookup already sent: the
statement that answers it starts after the read arrived, hence after any write that returned before
it — read-your-writes holds as with a lookup of its own.
"""

from __future__ import annotations

import asyncio

import asyncpg
from aiodataloader import DataLoader

from loyalty import members
from loyalty.repository.members import VersionRow

MAX_BATCH = 256


class MemberVersions:
    """`get(store_id, customer_id)`: the member's and the live program's versions, or None."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # No memo: a version is read fresh for every request (the loader's cache would serve the
        # version read by an earlier request).
        self._loader: DataLoader[tuple[str, str], VersionRow | None] = DataLoader(
            self._load, cache=False, max_batch_size=MAX_BATCH
        )

    def get(self, store_id: str, customer_id: str) -> asyncio.Future[VersionRow | None]:
        """A future, so a caller can await something else (Redis) while the batch goes out."""
        return self._loader.load((store_id, customer_id))

    async def _load(self, keys: list[tuple[str, str]]) -> list[VersionRow | None]:
        async with self._pool.acquire() as conn:
            return await members.current_versions(conn, keys=keys)
