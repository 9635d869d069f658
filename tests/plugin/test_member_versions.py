"""Batched member version lookups: concurrent reads share a statement and each gets its own answer."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from loyalty import members
from loyalty.stores import StoreCreated
from plugin.member_versions import MemberVersions
from plugin.runtime import Runtime
from tests.members import new_member


async def test_concurrent_lookups_share_one_statement(
    client: httpx.AsyncClient, store: StoreCreated, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = [await new_member(client, store, points=0) for _ in range(3)]
    batches: list[int] = []
    lookup = members.current_versions

    async def counted(conn: object, *, keys: list[tuple[str, str]]) -> object:
        batches.append(len(keys))
        return await lookup(conn, keys=keys)  # type: ignore[arg-type]

    monkeypatch.setattr(members, "current_versions", counted)
    versions = MemberVersions(runtime.pool)
    asked = [(store.store_id, cid) for cid in known] + [(store.store_id, "nobody"), ("no-store", known[0])]
    answers = await asyncio.gather(*(versions.get(*key) for key in asked))
    assert batches == [len(asked)]
    assert [answer is not None for answer in answers] == [True, True, True, False, False]
    for cid, answer in zip(known, answers, strict=False):
        alone = await versions.get(store.store_id, cid)
        assert answer == alone


async def test_a_lookup_after_a_write_sees_it(
    client: httpx.AsyncClient, store: StoreCreated, runtime: Runtime
) -> None:
    cid = await new_member(client, store, points=0)
    versions = MemberVersions(runtime.pool)
    before = await versions.get(store.store_id, cid)
    assert before is not None
    adjusted = await client.post(
        f"/v1/members/{cid}/adjustments",
        json={"points": 5, "reason": "sorry"},
        headers={"Authorization": f"Bearer {store.api_keys['marketer']}"},
    )
    assert adjusted.status_code == 201, adjusted.text
    after = await versions.get(store.store_id, cid)
    assert after is not None
    assert after.version > before.version
