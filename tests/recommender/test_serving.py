"""Serving: rows in Redis under a version, the switch, cold start, and the reader."""

from __future__ import annotations

import numpy as np
import pytest

from plugin.runtime import Runtime
from recommender import serving
from recommender.lists import POPULAR, POPULAR_IN_FAVOURITES, REASONS, TopLists
from tests.recommender import synthetic


def _top(members: list[str], k: int) -> TopLists:
    n = len(members)
    again = np.tile(np.arange(k), (n, 1))
    found = np.tile(np.arange(k, 2 * k), (n, 1))
    again_scores = np.tile(np.linspace(0.9, 0.5, k), (n, 1)).astype(np.float32)
    found_scores = np.tile(np.linspace(0.7, 0.1, k), (n, 1)).astype(np.float32)
    from recommender.lists import mix

    source, position = mix(again_scores, found_scores, k)
    return TopLists(
        members=np.array(members, dtype=np.str_),
        again_items=again,
        again_scores=again_scores,
        again_reasons=np.zeros((n, k), dtype=np.int8),
        discover_items=found,
        discover_scores=found_scores,
        discover_reasons=np.full((n, k), 2, dtype=np.int8),
        mixed_source=source,
        mixed_position=position,
    )


def test_rows_round_trip_through_the_binary_format() -> None:
    top = _top(["a", "b"], 4)
    rows = serving.encode_rows(top, 4)
    back = np.frombuffer(rows.tobytes(), dtype=serving.row_dtype(4))
    assert back["again_item"].tolist() == top.again_items.tolist()
    np.testing.assert_allclose(back["discover_score"], top.discover_scores, atol=1e-3)
    assert len(rows.tobytes()) == 2 * 4 * serving.ROW_BYTES_PER_SLOT


def test_cold_start_rows_put_favourite_categories_first() -> None:
    _, catalogue, _ = synthetic.as_arrays([])
    popularity = np.arange(len(catalogue.product), dtype=np.float64)  # later ids more popular
    rows = serving.popularity_rows(catalogue, popularity, [("tea",), ()], 10, members=100)
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
        await serving.publish(
            redis,
            store_id=store,
            version=version,
            top=_top(["a", "b"], 6),
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
    await serving.publish(
        runtime.redis,
        store_id=store,
        version=1,
        top=_top(["a"], 6),
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
    await serving.publish(
        runtime.redis,
        store_id=store,
        version=1,
        top=_top(["a"], 6),
        catalogue=catalogue,
        popularity=np.ones(len(catalogue.product)),
        facts=facts,
        k=6,
    )
    await serving.switch(runtime.redis, store_id=store, version=1)
    items, _ = await serving.Reader(runtime.redis).read(store, "fan", list_name="mixed", limit=6)
    assert [r for _, _, r in items] == ["popular_in_favourite_categories"] * 6
    assert all(p.startswith("glasses-") for p, _, _ in items)
