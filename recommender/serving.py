"""Serving from Redis: precomputed lists written under a model version (by `recommender.publishing`),
read without any model.

Layout (store `S`, version `N`):
- `patron:rec:S:live` -> N, set after N's lists are all written: the switch readers see;
- `patron:rec:S:vN:b<0..63>` -> hashes of customer id -> one fixed-width binary row (`ROW` below); a
  version is 64 keys, so dropping an old one is 64 UNLINKs whatever the store's size, and the buckets
  spread a big store over a Redis Cluster;
- `patron:rec:S:vN:products` -> the product ids the rows' indexes point into;
- `patron:rec:S:vN:popular` -> the cold-start row: store-wide popular products.
A member with no purchases but favourite categories gets their own row of what is popular in those.
The API reads the live version (cached for a second or two), then one HGET; it never sees the model.
"""

from __future__ import annotations

import functools
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from aiodataloader import DataLoader
from redis.asyncio import Redis

from recommender.lists import REASONS

BUCKETS = 64
MAX_BATCH = 256
"""Member rows fetched in one pipeline at most."""
LISTS = ("mixed", "buy_again", "discover")
PREFIX = "patron:rec:"


def row_dtype(k: int) -> np.dtype[np.void]:
    """One member's three lists, fixed width: product index (-1 empty), score (float16) and reason
    per slot for buy-again and discover; mixed as (which list, position) per slot."""
    return np.dtype(
        [
            ("again_item", "<i4", (k,)),
            ("again_score", "<f2", (k,)),
            ("again_reason", "i1", (k,)),
            ("discover_item", "<i4", (k,)),
            ("discover_score", "<f2", (k,)),
            ("discover_reason", "i1", (k,)),
            ("mixed_source", "i1", (k,)),
            ("mixed_position", "i1", (k,)),
        ]
    )


ROW_BYTES_PER_SLOT = row_dtype(1).itemsize


def live_key(store_id: str) -> str:
    return f"{PREFIX}{store_id}:live"


def version_key(store_id: str, version: int, suffix: str) -> str:
    return f"{PREFIX}{store_id}:v{version}:{suffix}"


def bucket_of(customer_id: str) -> int:
    return zlib.crc32(customer_id.encode()) % BUCKETS


async def switch(redis: Redis, *, store_id: str, version: int) -> None:
    """Point `live` at `version` (one SET) and drop every version but it and the one before it
    (kept for readers still caching the old number for a second)."""
    versions_key = f"{PREFIX}{store_id}:versions"
    await redis.sadd(versions_key, version)
    await redis.set(live_key(store_id), version)
    known = sorted(int(v) for v in await redis.smembers(versions_key))
    older = [v for v in known if v < version]
    for old in older[:-1]:
        keys = [version_key(store_id, old, f"b{b}") for b in range(BUCKETS)]
        keys += [version_key(store_id, old, "products"), version_key(store_id, old, "popular")]
        await redis.unlink(*keys)
        await redis.srem(versions_key, old)


def _bytes(value: bytes | str | None) -> bytes | None:
    """Redis answers bytes (the client does not decode); the union is the client's typing."""
    return value.encode() if isinstance(value, str) else value


class Reader:
    """Reads lists from Redis for the API. Caches only the live version per store (briefly) and the
    product-id vocabulary per version: memory grows with stores and catalogues, never with models.

    `observe` is told where each read was answered from: `member` (the member's own row),
    `cold_start` (the store's popular row) or `empty` (no list: no model yet, or nothing popular).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        live_ttl: float = 2.0,
        max_versions: int = 64,
        observe: Callable[[str], None] | None = None,
    ) -> None:
        self._redis = redis
        self._observe = observe or _ignore
        # Reads arriving in the same event-loop turn share one round trip (a pipeline of HGETs); no
        # memo, so every read asks Redis. A read never joins a pipeline already sent.
        self._rows: DataLoader[tuple[str, str], bytes | None] = DataLoader(
            self._fetch_rows, cache=False, max_batch_size=MAX_BATCH
        )
        self._live_ttl = live_ttl
        self._live: dict[str, tuple[float, int | None]] = {}
        self._products: OrderedDict[tuple[str, int], list[str]] = OrderedDict()
        self._max_versions = max_versions

    async def live_version(self, store_id: str) -> int | None:
        cached = self._live.get(store_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        raw = await self._redis.get(live_key(store_id))
        version = None if raw is None else int(raw)
        self._live[store_id] = (now + self._live_ttl, version)
        return version

    async def _product_ids(self, store_id: str, version: int) -> list[str]:
        key = (store_id, version)
        ids = self._products.get(key)
        if ids is None:
            raw = _bytes(await self._redis.get(version_key(store_id, version, "products")))
            ids = raw.decode().split("\n") if raw else []
            self._products[key] = ids
            while len(self._products) > self._max_versions:
                self._products.popitem(last=False)
        return ids

    async def read(
        self, store_id: str, customer_id: str, *, list_name: str, limit: int
    ) -> tuple[list[tuple[str, float, str]], int | None]:
        """(product_id, score, reason) triples for a member, and the model version they came from."""
        # The cached version and product ids are looked up inline: a coroutine each per read cost
        # a tenth of what the read costs beside its HGET.
        cached = self._live.get(store_id)
        if cached is not None and cached[0] > time.monotonic():
            version = cached[1]
        else:
            version = await self.live_version(store_id)
        if version is None:
            self._observe("empty")
            return [], None
        bucket = version_key(store_id, version, f"b{bucket_of(customer_id)}")
        raw = await self._rows.load((bucket, customer_id))
        if raw is not None:
            self._observe("member")
        else:
            raw = _bytes(await self._redis.get(version_key(store_id, version, "popular")))
            if raw is None:
                self._observe("empty")
                return [], version
            self._observe("cold_start")
        ids = self._products.get((store_id, version))
        if ids is None:
            ids = await self._product_ids(store_id, version)
        return _decode(raw, list_name, limit, ids), version

    async def _fetch_rows(self, keys: list[tuple[str, str]]) -> list[bytes | None]:
        if len(keys) == 1:  # alone: a plain HGET, without a pipeline's bookkeeping
            return [_bytes(await self._redis.hget(*keys[0]))]
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket, customer_id in keys:
                pipe.hget(bucket, customer_id)
            return [_bytes(row) for row in await pipe.execute()]


def _ignore(_: str) -> None:
    pass


@dataclass(frozen=True)
class Picks:
    """Many members' lists at once, one entry per (member, product), each member's best first."""

    customer_ids: list[str]
    product_ids: list[str]
    reasons: list[str]
    """Codes from `recommender.lists.REASONS`."""
    version: int | None


# For each asked member of one bucket: a presence byte, then the first ARGV[2] product indexes and
# reason codes of one list (its fields start ARGV[1] times k bytes into a row of k slots; slots past
# k read as empty), cut out in Redis and concatenated into one string: a few bytes per member cross
# the wire, not the whole row, and the client parses one reply per chunk, not one per member.
_EXTRACT = f"""
local per, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local values = redis.call('HMGET', KEYS[1], unpack(ARGV, 3))
local out = {{}}
for i, v in ipairs(values) do
    if v then
        local k = #v / {ROW_BYTES_PER_SLOT}
        local n = math.min(limit, k)
        local items, reasons = per * k, per * k + 6 * k
        out[i] = '\\1' .. string.sub(v, items + 1, items + 4 * n) .. string.rep('\\255', 4 * (limit - n))
            .. string.sub(v, reasons + 1, reasons + n) .. string.rep('\\0', limit - n)
    else
        out[i] = string.rep('\\0', 1 + 5 * limit)
    end
end
return table.concat(out)
"""
_LIST_OFFSETS = {"buy_again": 0, "discover": 7}
"""Where a list's fields start in a row, in units of k bytes (see `row_dtype`)."""


async def read_many(
    redis: Redis,
    *,
    store_id: str,
    customer_ids: Sequence[str],
    list_name: Literal["buy_again", "discover"],
    limit: int,
    chunk: int = 1000,
) -> Picks:
    """The first `limit` entries (at most k) of one list for each of these members, in one pipelined
    round trip (a script per bucket and `chunk` members) and one vectorised decode: the care scan's
    bulk read.

    Only members with a row of their own are answered: the store-wide popular row is a cold start for
    a page to show, not a pick for one member."""
    raw_version = _bytes(await redis.get(live_key(store_id)))
    if raw_version is None or not customer_ids:
        return Picks([], [], [], None if raw_version is None else int(raw_version))
    version = int(raw_version)
    by_bucket: dict[int, list[str]] = {}
    for customer_id in customer_ids:
        by_bucket.setdefault(bucket_of(customer_id), []).append(customer_id)
    extract = redis.register_script(_EXTRACT)
    asked: list[str] = []
    async with redis.pipeline(transaction=False) as pipe:
        for bucket, names in by_bucket.items():
            for lo in range(0, len(names), chunk):
                part = names[lo : lo + chunk]
                key = version_key(store_id, version, f"b{bucket}")
                await extract(keys=[key], args=[_LIST_OFFSETS[list_name], limit, *part], client=pipe)
                asked.extend(part)
        pipe.get(version_key(store_id, version, "products"))
        *answers, raw_products = await pipe.execute()
    product_text = _bytes(raw_products)
    if not product_text:
        return Picks([], [], [], version)
    record = np.dtype([("present", "u1"), ("item", "<i4", (limit,)), ("reason", "i1", (limit,))])
    records = np.frombuffer(b"".join(_bytes(answer) or b"" for answer in answers), dtype=record)
    # A list ends at its first empty slot; a member without a row has none.
    kept = np.cumprod(records["item"] >= 0, axis=1).astype(bool) & (records["present"] == 1)[:, None]
    member, _ = np.nonzero(kept)
    products = np.array(product_text.decode().split("\n"), dtype=object)
    return Picks(
        customer_ids=np.array(asked, dtype=object)[member].tolist(),
        product_ids=products[records["item"][kept]].tolist(),
        reasons=np.array(REASONS, dtype=object)[records["reason"][kept]].tolist(),
        version=version,
    )


def _decode(raw: bytes, list_name: str, limit: int, ids: list[str]) -> list[tuple[str, float, str]]:
    """The first `limit` entries of one list from a `row_dtype` row, with `struct` rather than numpy:
    for ten entries, building arrays would cost more than the Redis round trip it follows. Each list's
    first `limit` product indexes and scores come out in one call each (a mixed slot's position in its
    list is never past the slot), then the slots are walked."""
    k = len(raw) // ROW_BYTES_PER_SLOT
    n = min(limit, k)
    ints, bits = _structs(n)
    lists = [
        (
            ints.unpack_from(raw, base),
            bits.unpack_from(raw, base + 4 * k),
            raw[base + 6 * k : base + 6 * k + n],
        )
        for base in (0, 7 * k)  # byte offsets of buy-again's and discover's fields
    ]
    rounded, reasons = _rounded_halves(), REASONS
    if list_name == "mixed":
        # -1 (no entry) reads back as 255 from the bytes; entries after the first empty one are empty.
        picks = zip(raw[14 * k : 14 * k + n], raw[15 * k : 15 * k + n], strict=True)
    else:
        which = 0 if list_name == "buy_again" else 1
        picks = zip([which] * n, range(n), strict=True)
    out: list[tuple[str, float, str]] = []
    for which, position in picks:
        if which > 1:
            break
        items, scores, codes = lists[which]
        item = items[position]
        if item < 0:
            break
        out.append((ids[item], rounded[scores[position]], reasons[codes[position]]))
    return out


@functools.cache
def _structs(n: int) -> tuple[struct.Struct, struct.Struct]:
    """Unpacking `n` product indexes (int32) and `n` scores as their float16 bits."""
    return struct.Struct(f"<{n}i"), struct.Struct(f"<{n}H")


@functools.cache
def _rounded_halves() -> list[float]:
    """Every float16, by its bits, as the score the API shows (4 decimals): a list index per entry
    instead of a conversion and a `round` call (most of the decoding's time). 65,536 floats, made
    at the first read rather than by every process that imports this module."""
    halves = struct.unpack("<65536e", struct.pack("<65536H", *range(65536)))
    return [round(half, 4) for half in halves]
