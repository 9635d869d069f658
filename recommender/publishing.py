"""Writing a model version's lists to Redis in `serving`'s layout: binary rows per member, the
cold-start rows, and the HSETs that carry them (not live until `serving.switch`)."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from redis.asyncio import Redis

from recommender import resp
from recommender.dataset import Catalogue, MemberFacts, Strs
from recommender.lists import POPULAR, POPULAR_IN_FAVOURITES, TopLists
from recommender.serving import BUCKETS, row_dtype, version_key


def encode_rows(top: TopLists, k: int) -> NDArray[np.void]:
    """The lists as binary rows, one per member, in one vectorised assignment per field."""
    rows = np.zeros(len(top.members), dtype=row_dtype(k))
    rows["again_item"] = top.again_items[:, :k]
    rows["again_score"] = np.where(np.isfinite(top.again_scores), top.again_scores, 0)[:, :k]
    rows["again_reason"] = top.again_reasons[:, :k]
    rows["discover_item"] = top.discover_items[:, :k]
    rows["discover_score"] = np.where(np.isfinite(top.discover_scores), top.discover_scores, 0)[:, :k]
    rows["discover_reason"] = top.discover_reasons[:, :k]
    rows["mixed_source"] = top.mixed_source[:, :k]
    rows["mixed_position"] = top.mixed_position[:, :k]
    return rows


def popularity_rows(
    catalogue: Catalogue,
    popularity: NDArray[np.float64],
    favourites: list[tuple[str, ...]],
    k: int,
    members: int,
) -> NDArray[np.void]:
    """Cold-start rows: popular products of the given favourite categories first, then store-wide
    popular ones (`favourites=[()]` gives the store-wide row). The score is the share of members who
    bought the product recently, a probability like the other lists' scores."""
    score = np.where(catalogue.active, popularity, -np.inf)
    order = np.argsort(-score, kind="stable")
    order = order[np.isfinite(score[order])]
    rows = np.zeros(len(favourites), dtype=row_dtype(k))
    rows["again_item"] = -1
    rows["discover_item"] = -1
    rows["mixed_source"] = -1
    for i, categories in enumerate(favourites):
        liked = np.isin(catalogue.category[order], np.array(categories, dtype=np.str_))
        picked = np.concatenate([order[liked], order[~liked]])[:k]
        n = len(picked)
        rows["discover_item"][i, :n] = picked
        rows["discover_score"][i, :n] = score[picked] / max(members, 1)
        rows["discover_reason"][i, :n] = np.where(np.arange(n) < liked.sum(), POPULAR_IN_FAVOURITES, POPULAR)
        rows["mixed_source"][i, :n] = 1
        rows["mixed_position"][i, :n] = np.arange(n)
    return rows


@dataclass(frozen=True)
class Published:
    version: int
    members: int
    seconds: float


class Publisher:
    """Writes one version's rows as blocks of lists arrive (not live until `switch`): per batch, one
    HSET of (customer id, row bytes) per bucket, packed by `resp.hsets` and sent on one connection."""

    def __init__(self, redis: Redis, *, store_id: str, version: int, k: int, batch: int = 16_384) -> None:
        self._redis = redis
        self._store_id = store_id
        self._version = version
        self._k = k
        self._batch = batch
        self._buckets = [version_key(store_id, version, f"b{b}").encode() for b in range(BUCKETS)]
        self._started = time.perf_counter()
        self.members = 0

    async def catalogue(self, catalogue: Catalogue, popularity: NDArray[np.float64], members: int) -> None:
        """The product ids rows point into, and the store-wide cold-start row."""
        popular = popularity_rows(catalogue, popularity, [()], self._k, members)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(
                version_key(self._store_id, self._version, "products"), "\n".join(catalogue.product.tolist())
            )
            pipe.set(version_key(self._store_id, self._version, "popular"), popular.tobytes())
            await pipe.execute()

    async def rows(self, members: Strs, rows: NDArray[np.void]) -> None:
        """One row per member (`row_dtype(k)`)."""
        names = _utf8(members)
        buckets = np.fromiter(map(zlib.crc32, names), dtype=np.int64, count=len(names)) % BUCKETS
        values = rows.view(np.uint8).reshape(len(rows), rows.dtype.itemsize)
        for lo in range(0, len(names), self._batch):
            hi = lo + self._batch
            await _send(self._redis, resp.hsets(self._buckets, buckets[lo:hi], names[lo:hi], values[lo:hi]))
        self.members += len(names)

    async def lists(self, top: TopLists) -> None:
        """A block of members' lists, encoded (`encode_rows`)."""
        await self.rows(top.members, encode_rows(top, self._k))

    async def cold_start(
        self,
        catalogue: Catalogue,
        popularity: NDArray[np.float64],
        facts: MemberFacts | None,
        known: Strs,
        members: int,
    ) -> None:
        """Rows for members without purchases (not in `known`) but with favourite categories."""
        if facts is None:
            return
        cold = np.array([bool(f) for f in facts.favourites], dtype=bool) & ~np.isin(facts.member, known)
        if cold.any():
            chosen = [facts.favourites[i] for i in np.flatnonzero(cold)]
            await self.rows(
                facts.member[cold], popularity_rows(catalogue, popularity, chosen, self._k, members)
            )

    def done(self) -> Published:
        """How many rows were written, and how long since the publisher was made."""
        return Published(self._version, self.members, time.perf_counter() - self._started)


def _utf8(members: Strs) -> list[bytes]:
    """Customer ids as UTF-8 (what `bucket_of` hashes and Redis stores): one C conversion when they are
    ASCII, as ids usually are."""
    try:
        ascii_ids: list[bytes] = members.astype(np.bytes_).tolist()
    except UnicodeEncodeError:
        return [m.encode() for m in members.tolist()]
    return ascii_ids


async def _send(redis: Redis, commands: list[bytes]) -> None:
    """Ready RESP commands written on one connection of the client's pool, one at a time (each waits
    for the socket to drain: a block's megabytes are never copied into one buffer), then their replies
    read (an error reply raises; the connection is then dropped, not returned with replies unread)."""
    pool = redis.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        for command in commands:
            await connection.send_packed_command(command, check_health=False)
        for _ in commands:
            await connection.read_response()
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)


async def publish(
    redis: Redis,
    *,
    store_id: str,
    version: int,
    top: TopLists,
    catalogue: Catalogue,
    popularity: NDArray[np.float64],
    facts: MemberFacts | None,
    k: int,
    batch: int = 16_384,
) -> Published:
    """Write a version's rows at once (not live until `switch`)."""
    publisher = Publisher(redis, store_id=store_id, version=version, k=k, batch=batch)
    await publisher.catalogue(catalogue, popularity, len(top.members))
    await publisher.lists(top)
    await publisher.cold_start(catalogue, popularity, facts, top.members, len(top.members))
    return publisher.done()
