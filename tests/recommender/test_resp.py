"""RESP packing: what `resp.hsets` builds is what redis-py would send, and Redis stores it."""

from __future__ import annotations

import dataclasses

import numpy as np
from redis.asyncio.connection import Connection

from plugin.runtime import Runtime
from recommender import publishing, resp, serving
from tests.recommender import synthetic

# Fields of several byte lengths, multi-byte UTF-8 among them, over three keys (one left empty).
FIELDS = ["a", "bb", "cc", "dé", "ünïcode-id", "x" * 12, "y" * 12, "z"]
GROUPS = np.array([0, 2, 0, 2, 0, 2, 2, 0], dtype=np.int64)
KEYS = [b"k:0", b"k:1", b"k:2"]


def _values(n: int, width: int) -> np.ndarray:
    return np.arange(n * width, dtype=np.int64).reshape(n, width).astype(np.uint8)


def test_hsets_are_the_commands_redis_py_packs() -> None:
    names = [f.encode() for f in FIELDS]
    values = _values(len(names), 5)
    commands = resp.hsets(KEYS, GROUPS, names, values)
    packer = Connection()
    # Redis takes a hash's fields in any order; per key, the same (field, value) pairs in one command.
    expected = set()
    for group in (0, 2):
        args: list[bytes] = []
        for i in np.flatnonzero(group == GROUPS).tolist():
            args += [names[i], values[i].tobytes()]
        expected.add(_pairs(b"".join(packer.pack_command("HSET", KEYS[group], *args))))
    assert len(commands) == 2
    assert {_pairs(c) for c in commands} == expected


def _pairs(command: bytes) -> tuple[bytes, frozenset[tuple[bytes, bytes]]]:
    """(key, {(field, value)}) of one packed HSET, checked to be exactly one whole command."""
    end = command.index(b"\r\n")
    n_args, pos = int(command[1:end]), end + 2
    args = []
    for _ in range(n_args):
        end = command.index(b"\r\n", pos)
        length = int(command[pos + 1 : end])
        args.append(command[end + 2 : end + 2 + length])
        assert command[end + 2 + length : end + 4 + length] == b"\r\n"
        pos = end + 4 + length
    assert pos == len(command)
    assert args[0] == b"HSET"
    return args[1], frozenset(zip(args[2::2], args[3::2], strict=True))


async def test_publisher_writes_ids_of_any_length_and_script(runtime: Runtime) -> None:
    """Rows published for ids of mixed lengths, some not ASCII, land under the reader's bucket."""
    redis, store, k = runtime.redis, "st_resp_test", 4
    top = synthetic.top_lists(FIELDS, k)
    # Every member's row its own, so that a row landing under another member's id would show.
    top = dataclasses.replace(top, again_items=top.again_items + 10 * np.arange(len(FIELDS))[:, None])
    publisher = publishing.Publisher(redis, store_id=store, version=1, k=k, batch=3)
    await publisher.lists(top)
    rows = publishing.encode_rows(top, k)
    for member, row in zip(FIELDS, rows, strict=True):
        bucket = serving.version_key(store, 1, f"b{serving.bucket_of(member)}")
        assert await redis.hget(bucket, member) == row.tobytes()
    assert publisher.members == len(FIELDS)
