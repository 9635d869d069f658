"""Serving: rows in Redis under a version, the switch, cold start, and the reader."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from plugin.runtime import Runtime
from recommender import publishing, serving
from recommender.lists import POPULAR, POPULAR_IN_FAVOURITES, REASONS, TopLists
from recommender.mixed import mix
from tests.recommender import synthetic


def test_rows_round_trip_through_the_binary_format() -> None:
    top = synthetic.top_lists(["a", "b"], 4)
    rows = publishing.encode_rows(top, 4)
    back = np.frombuffer(rows.tobytes(), dtype=serving.row_dtype(4))
    assert back["again_item"].tolist() == top.again_items.tolist()
    np.testing.assert_allclose(back["discover_score"], top.discover_scores, atol=1e-3)
    assert len(rows.tobytes()) == 2 * 4 * serving.ROW_BYTES_PER_SLOT


def test_cold_start_rows_put_favourite_categories_first() -> None:
    _, catalogue, _ = synthetic.as_arrays([])
    popularity = np.arange(len(catalogue.product), dtype=np.float64)  # later ids more popular
    rows = publishing.popularity_rows(catalogue, popularity, [("tea",), ()], 10, members=100)
    liked = rows[0]["discover_item"][: synthetic.PER_CATEGORY]
    assert {str(c) for c in catalogue.category[liked]} == {"tea"}
    assert rows[0]["discover_reason"][: synthetic.PER_CATEGORY].tolist() == [POPULAR_IN_FAVOURITES] * 8
    assert rows[0]["discover_reason"][8:].tolist() == [POPULAR] * 2
    assert rows[1]["discover_item"][0] == np.argmax(popularity)
    assert set(rows[1]["discover_reason"].tolist()) == {POPULAR}


async def test_publish_switch_and_read(runtime: Runtime) -> None:
    redis, store = runtime.redis, "st_serving_test"
    _, catalogue, _ = synthetic.as_arrays([])
    popularity = np.ones(len(catalogue.product))
    reader = serving.Reader(redis, live_ttl=0.0)
    assert await reader.read(store, "a", list_name="mixed", limit=5) == ([], None)
    for version in (1, 2, 3):
        await publishing.publish(
            redis,
            store_id=store,
            version=version,
            top=synthetic.top_lists(["a", "b"], 6),
            catalogue=catalogue,
            popularity=popularity,
            facts=None,
            k=6,
            batch=1,
        )
        await serving.switch(redis, store_id=store, version=version)
    # The live version and the one before it are kept; older ones are gone.
    assert (
        await redis.exists(serving.version_key(store, 1, "b0"), serving.version_key(store, 1, "products"))
        == 0
    )
    assert await redis.exists(serving.version_key(store, 2, "products")) == 1
    items, version = await reader.read(store, "a", list_name="mixed", limit=5)
    assert version == 3
    ids = [p for p, _, _ in items]
    assert ids == [str(catalogue.product[i]) for i in (0, 1, 2, 6, 3)]  # 0.9 .8 .7 (.7 discover) .6
    assert [r for _, _, r in items][:3] == [REASONS[0]] * 3
    again, _ = await reader.read(store, "a", list_name="buy_again", limit=50)
    assert len(again) == 6
    unknown, version = await reader.read(store, "nobody", list_name="discover", limit=3)
    assert version == 3
    assert [r for _, _, r in unknown] == ["popular"] * 3


@pytest.mark.parametrize("list_name", ["mixed", "buy_again", "discover"])
async def test_limit_is_respected(runtime: Runtime, list_name: str) -> None:
    _, catalogue, _ = synthetic.as_arrays([])
    store = f"st_limit_{list_name}"
    await publishing.publish(
        runtime.redis,
        store_id=store,
        version=1,
        top=synthetic.top_lists(["a"], 6),
        catalogue=catalogue,
        popularity=np.ones(len(catalogue.product)),
        facts=None,
        k=6,
    )
    await serving.switch(runtime.redis, store_id=store, version=1)
    items, _ = await serving.Reader(runtime.redis).read(store, "a", list_name=list_name, limit=2)
    assert len(items) == 2


async def test_members_without_purchases_get_their_favourite_categories(runtime: Runtime) -> None:
    from recommender.dataset import MemberFacts

    _, catalogue, _ = synthetic.as_arrays([])
    facts = MemberFacts(
        member=np.array(["a", "fan"], dtype=np.str_),
        segment=np.array(["member", "member"], dtype=np.str_),
        favourites=[("wine",), ("glasses",)],
    )
    store = "st_favourites"
    await publishing.publish(
        runtime.redis,
        store_id=store,
        version=1,
        top=synthetic.top_lists(["a"], 6),
        catalogue=catalogue,
        popularity=np.ones(len(catalogue.product)),
        facts=facts,
        k=6,
    )
    await serving.switch(runtime.redis, store_id=store, version=1)
    items, _ = await serving.Reader(runtime.redis).read(store, "fan", list_name="mixed", limit=6)
    assert [r for _, _, r in items] == ["popular_in_favourite_categories"] * 6
    assert all(p.startswith("glasses-") for p, _, _ in items)


async def test_read_many_agrees_with_the_reader_and_skips_members_without_a_row(runtime: Runtime) -> None:
    _, catalogue, _ = synthetic.as_arrays([])
    members = [f"m{i}" for i in range(40)]
    top = synthetic.top_lists(members, 6)
    # Member m1's discover list has two entries, then nothing.
    top.discover_items[1, 2:] = -1
    store = "st_read_many"
    reader = serving.Reader(runtime.redis, live_ttl=0.0)
    empty = await serving.read_many(
        runtime.redis, store_id=store, customer_ids=members, list_name="discover", limit=3
    )
    assert (empty.customer_ids, empty.version) == ([], None)
    await publishing.publish(
        runtime.redis,
        store_id=store,
        version=4,
        top=top,
        catalogue=catalogue,
        popularity=np.ones(len(catalogue.product)),
        facts=None,
        k=6,
    )
    await serving.switch(runtime.redis, store_id=store, version=4)
    asked = ["nobody", *members]
    for list_name, limit in (("discover", 3), ("buy_again", 3), ("discover", 9)):
        picks = await serving.read_many(
            runtime.redis, store_id=store, customer_ids=asked, list_name=list_name, limit=limit, chunk=7
        )
        assert picks.version == 4
        got: dict[str, list[tuple[str, str]]] = {}
        for customer_id, product_id, reason in zip(
            picks.customer_ids, picks.product_ids, picks.reasons, strict=True
        ):
            got.setdefault(customer_id, []).append((product_id, reason))
        assert set(got) == set(members)  # "nobody" has no row of their own: left out
        for member in members:
            expected, _ = await reader.read(store, member, list_name=list_name, limit=limit)
            assert got[member] == [(p, r) for p, _, r in expected], (list_name, member)
    assert len(got["m0"]) == 6  # more asked than kept: the whole list
    assert len(got["m1"]) == 2


@pytest.mark.parametrize("limit", [1, 4, 10])
def test_decode_reads_back_every_list_of_a_row(limit: int) -> None:
    """Each list read from a row: its entries in order up to the first empty slot, at most `limit`;
    mixed takes each slot from the list and position the merge chose."""
    rng = np.random.default_rng(limit)
    k, n = 6, 40
    drawn = [np.where(rng.random((n, k)) < empty, -np.inf, rng.random((n, k))) for empty in (0.4, 0.2)]
    scores = [-np.sort(-d, axis=1).astype(np.float32) for d in drawn]
    items = [np.where(np.isfinite(s), rng.integers(0, 30, (n, k)), -1) for s in scores]
    reasons = [rng.integers(0, 2, (n, k)).astype(np.int8), rng.integers(2, 4, (n, k)).astype(np.int8)]
    source, position = mix(scores[0], scores[1], k)
    top = TopLists(
        members=np.array([f"m{i}" for i in range(n)], dtype=np.str_),
        again_items=items[0],
        again_scores=scores[0],
        again_reasons=reasons[0],
        discover_items=items[1],
        discover_scores=scores[1],
        discover_reasons=reasons[1],
        mixed_source=source,
        mixed_position=position,
    )
    ids = [f"p{i}" for i in range(30)]

    def entry(which: int, row: int, slot: int) -> tuple[str, float, str]:
        score = round(float(np.float16(scores[which][row, slot])), 4)
        return ids[items[which][row, slot]], score, REASONS[reasons[which][row, slot]]

    for row, raw in enumerate(publishing.encode_rows(top, k)):
        for which, name in enumerate(("buy_again", "discover")):
            expected = [entry(which, row, j) for j in range(k) if items[which][row, j] >= 0][:limit]
            assert serving._decode(raw.tobytes(), name, limit, ids) == expected
        taken = [entry(s, row, p) for s, p in zip(source[row], position[row], strict=True) if s >= 0]
        assert serving._decode(raw.tobytes(), "mixed", limit, ids) == taken[:limit]


async def test_concurrent_reads_share_one_round_trip_and_each_gets_its_own_list(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, catalogue, _ = synthetic.as_arrays([])
    members = [f"c{i}" for i in range(12)]
    store = "st_batched_reads"
    await publishing.publish(
        runtime.redis,
        store_id=store,
        version=1,
        top=synthetic.top_lists(members, 6),
        catalogue=catalogue,
        popularity=np.ones(len(catalogue.product)),
        facts=None,
        k=6,
    )
    await serving.switch(runtime.redis, store_id=store, version=1)
    reader = serving.Reader(runtime.redis)
    alone = [await reader.read(store, cid, list_name="mixed", limit=4) for cid in [*members, "nobody"]]
    batches: list[int] = []
    fetch = reader._fetch_rows

    async def counted(keys: list[tuple[str, str]]) -> list[bytes | None]:
        batches.append(len(keys))
        return await fetch(keys)

    monkeypatch.setattr(reader, "_fetch_rows", counted)
    monkeypatch.setattr(reader._rows, "batch_load_fn", counted)
    together = await asyncio.gather(
        *(reader.read(store, cid, list_name="mixed", limit=4) for cid in [*members, "nobody"])
    )
    assert batches == [len(members) + 1]
    assert list(together) == alone
    assert together[-1] == alone[-1] != together[0]  # "nobody" got the cold-start row, not a neighbour's
