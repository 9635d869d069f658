"""Train -> precompute -> publish -> serve, on synthetic history small enough to take seconds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar

from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from recommender import repository
from recommender.lists import Recommender
from recommender.model import Hyper
from recommender.refresh import Refreshed, refresh
from recommender.train import TrainConfig
from tests.conftest import bearer
from tests.recommender import synthetic

CONFIG = TrainConfig(hyper=Hyper(components=16, epochs=10))
NOW = synthetic.START + timedelta(days=121)


async def _train(runtime: Runtime, store: StoreCreated) -> Refreshed:
    async with runtime.pool.acquire() as conn:
        return await refresh(
            conn, runtime.redis, store_id=store.store_id, now=NOW, config=CONFIG, k=20, seed=1
        )


@pytest.fixture
async def trained(
    client: httpx.AsyncClient, store: StoreCreated, runtime: Runtime, app: Litestar
) -> Refreshed:
    async with runtime.pool.acquire() as conn, conn.transaction():
        await synthetic.insert(conn, store.store_id, synthetic.history())
    app.state.pop("recommendation_reader", None)  # a fresh reader: no cached live version
    return await _train(runtime, store)


async def _get(
    client: httpx.AsyncClient, store: StoreCreated, cid: str, scope: str = "channel", **params: Any
) -> httpx.Response:
    return await client.get(
        f"/v1/members/{cid}/recommendations", params=params, headers=bearer(store.api_keys[scope])
    )  # type: ignore[index]


async def test_training_publishes_a_live_version(
    trained: Refreshed, store: StoreCreated, runtime: Runtime
) -> None:
    assert trained.version == 1
    assert trained.members == 80
    assert trained.products == 32
    assert trained.metrics["validation_mixed_precision_at_10"] > 0.1  # staples are bought again
    async with runtime.pool.acquire() as conn:
        assert await repository.live_version(conn, store_id=store.store_id) == 1
        data = await repository.model_arrays(conn, store_id=store.store_id, version=1)
    assert data is not None
    rec = Recommender.from_bytes(data)
    assert len(rec.members) == 80
    assert rec.embeddings.user_vectors.shape == (80, 16)


async def test_members_get_their_groups_products(
    trained: Refreshed, client: httpx.AsyncClient, store: StoreCreated
) -> None:
    group_a = {"tea", "cups"}
    hits = total = 0
    for cid in ("a0", "a1", "a2", "a3", "a4"):
        body = (await _get(client, store, cid, list="discover", limit=5)).json()
        assert body["list"] == "discover"
        assert body["model_version"] == 1
        hits += sum(item["product_id"].split("-")[0] in group_a for item in body["items"])
        total += len(body["items"])
        again = (await _get(client, store, cid, list="buy_again", limit=20)).json()["items"]
        assert "tea-0" in [item["product_id"] for item in again]
        assert {item["reason"] for item in again} <= {"bought_before", "due_again"}
    assert total == 25
    assert hits / total >= 0.7


async def test_mixed_interleaves_by_score(
    trained: Refreshed, client: httpx.AsyncClient, store: StoreCreated
) -> None:
    body = (await _get(client, store, "b3", limit=10)).json()
    assert body["list"] == "mixed"
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert len(body["items"]) == 10


async def test_a_member_unknown_to_the_model_gets_popular_products(
    trained: Refreshed, client: httpx.AsyncClient, store: StoreCreated
) -> None:
    body = (await _get(client, store, "someone-new", limit=3)).json()
    assert body["model_version"] == 1
    assert [item["reason"] for item in body["items"]] == ["popular"] * 3
    assert body["items"][0]["product_id"] in {"tea-0", "wine-0"}  # the staples are the most bought


async def test_reads_redis_only(
    trained: Refreshed, client: httpx.AsyncClient, store: StoreCreated, runtime: Runtime
) -> None:
    assert (await _get(client, store, "a1")).status_code == 200  # the API key is now cached

    class NoDatabase:
        def acquire(self) -> None:
            raise AssertionError("the recommendations route touched PostgreSQL")

    pool, runtime.pool = runtime.pool, NoDatabase()  # type: ignore[assignment]
    try:
        response = await _get(client, store, "a1", list="discover")
    finally:
        runtime.pool = pool
    assert response.status_code == 200
    assert len(response.json()["items"]) == 10


async def test_scopes_and_validation(
    trained: Refreshed, client: httpx.AsyncClient, store: StoreCreated
) -> None:
    for scope in ("channel", "marketer"):
        assert (await _get(client, store, "a1", scope=scope)).status_code == 200
    # An app reads a member's lists with that member's token, not with its own key.
    for scope in ("storefront", "app"):
        assert (await _get(client, store, "a1", scope=scope)).status_code == 403
    assert (await _get(client, store, "a1", limit=0)).status_code in (400, 422)
    assert (await _get(client, store, "a1", list="everything")).status_code in (400, 422)


async def test_retraining_switches_versions(
    trained: Refreshed, client: httpx.AsyncClient, store: StoreCreated, runtime: Runtime, app: Litestar
) -> None:
    again = await _train(runtime, store)
    assert again.version == 2
    app.state.pop("recommendation_reader", None)
    assert (await _get(client, store, "a1")).json()["model_version"] == 2


async def test_before_any_training_the_list_is_empty(client: httpx.AsyncClient, store: StoreCreated) -> None:
    body = (await _get(client, store, "a1")).json()
    assert body == {"items": [], "list": "mixed", "model_version": None}


async def test_a_store_younger_than_the_horizon_still_trains(
    client: httpx.AsyncClient, store: StoreCreated, runtime: Runtime
) -> None:
    recent = [line for line in synthetic.history() if line.placed_at > NOW - timedelta(days=20)]
    async with runtime.pool.acquire() as conn:
        async with conn.transaction():
            await synthetic.insert(conn, store.store_id, recent)
        done = await refresh(conn, runtime.redis, store_id=store.store_id, now=NOW, config=CONFIG, k=10)
    assert done.version == 1
    assert done.members == len({line.customer_id for line in recent})


async def test_a_store_without_orders_is_left_alone(store: StoreCreated, runtime: Runtime) -> None:
    async with runtime.pool.acquire() as conn:
        done = await refresh(conn, runtime.redis, store_id=store.store_id, now=NOW, config=CONFIG)
    assert done.version is None
