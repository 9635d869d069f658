"""Dataset building: the numpy aggregation, feature matrices, and the same from PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import numpy as np
import pytest

from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from recommender import dataset, repository
from recommender.dataset import SECONDS_PER_DAY, FeatureWeights, Purchases
from tests.events import make_customer, make_line, make_order, send
from tests.recommender import synthetic

DAY = SECONDS_PER_DAY


def _purchases(rows: list[tuple[str, str, float, float]]) -> Purchases:
    return Purchases(
        member=np.array([r[0] for r in rows], dtype=np.str_),
        product=np.array([r[1] for r in rows], dtype=np.str_),
        at=np.array([r[2] * DAY for r in rows]),
        quantity=np.array([r[3] for r in rows]),
    )


class TestAggregate:
    def test_pairs_count_orders_quantity_decay_and_median_gap(self) -> None:
        _, catalogue, _ = synthetic.as_arrays([])
        purchases = _purchases(
            [
                ("m1", "tea-0", 0, 1),
                ("m1", "tea-0", 10, 2),
                ("m1", "tea-0", 30, 1),
                ("m1", "cups-1", 25, 3),
                ("m2", "tea-0", 35, 1),  # at `until`: not before it, left out
                ("m2", "nope", 5, 1),  # not in the catalogue
            ]
        )
        pairs = dataset.aggregate(purchases, catalogue, until=35 * DAY, half_life_days=5.0)
        assert pairs.members.tolist() == ["m1"]
        got = {str(catalogue.product[i]): k for k, i in enumerate(pairs.item)}
        tea, cups = got["tea-0"], got["cups-1"]
        assert pairs.orders[tea] == 3
        assert pairs.quantity[tea] == 4
        assert pairs.median_gap[tea] == pytest.approx(15.0)  # gaps 10 and 20
        assert np.isnan(pairs.median_gap[cups])
        assert pairs.last_at[tea] == 30 * DAY
        assert pairs.first_at[tea] == 0
        assert pairs.recency[tea] == pytest.approx(0.5**7 + 0.5**5 + 0.5**1)
        assert pairs.recency[cups] == pytest.approx(0.5**2)

    def test_group_median_matches_numpy(self) -> None:
        rng = np.random.default_rng(1)
        keys = rng.integers(0, 20, 500)
        values = rng.normal(size=500)
        got = dataset.group_median(keys, values, 25)
        for key in range(25):
            chosen = values[keys == key]
            expected = np.median(chosen) if len(chosen) else np.nan
            np.testing.assert_allclose(got[key], expected, equal_nan=True)


class TestFeatures:
    def test_item_rows_sum_to_one_and_name_every_kind(self) -> None:
        _, catalogue, _ = synthetic.as_arrays([])
        matrix, names = dataset.item_features(catalogue, FeatureWeights(min_tag_products=2))
        np.testing.assert_allclose(np.asarray(matrix.sum(axis=1)).ravel(), 1.0)
        kinds = {name.split(":")[0] for name in names}
        assert kinds == {"product", "category", "brand", "price", "tag"}
        assert matrix.shape == (len(catalogue.product), len(names))

    def test_identity_only_is_the_identity(self) -> None:
        _, catalogue, _ = synthetic.as_arrays([])
        matrix, _ = dataset.item_features(catalogue, FeatureWeights(), identity_only=True)
        np.testing.assert_array_equal(matrix.toarray(), np.eye(len(catalogue.product)))

    def test_user_features_carry_segment_and_favourites(self) -> None:
        members = np.array(["a", "b"], dtype=np.str_)
        facts = dataset.MemberFacts(
            member=np.array(["b", "a"], dtype=np.str_),
            segment=np.array(["gold", "member"], dtype=np.str_),
            favourites=[("tea",), ()],
        )
        matrix, names = dataset.user_features(members, facts, FeatureWeights(segment=0.25))
        row_b = dict(zip(names, matrix.toarray()[1], strict=True))
        assert row_b["segment:gold"] > 0
        assert row_b["favourite:tea"] > 0
        assert dict(zip(names, matrix.toarray()[0], strict=True))["segment:member"] > 0


async def test_interactions_from_postgres_are_net_of_refunds_and_cancellations(
    client: httpx.AsyncClient, store: StoreCreated, runtime: Runtime
) -> None:
    ada = make_customer(customer_id="ada")
    first = make_order(
        customer=ada,
        placed_at="2026-03-01T10:00:00Z",
        lines=[make_line(line_id="x", product_id="p1", quantity=3)],
    )
    second = make_order(
        customer=ada,
        placed_at="2026-03-11T10:00:00Z",
        lines=[
            make_line(line_id="y", product_id="p1", quantity=1),
            make_line(line_id="z", product_id="p2", quantity=2),
        ],
    )
    third = make_order(
        customer=ada,
        placed_at="2026-03-21T10:00:00Z",
        lines=[make_line(line_id="w", product_id="p1", quantity=1)],
    )
    cancelled = make_order(
        customer=ada,
        placed_at="2026-03-25T10:00:00Z",
        lines=[make_line(line_id="v", product_id="p3", quantity=1)],
    )
    for order in (first, second, third, cancelled):
        assert (await send(client, store, "order.paid", order)).status_code == 200
    refund = {
        "order_id": second["order_id"],
        "refund_id": "r1",
        "amount": 2000,
        "lines": [{"line_id": "z", "quantity": 2}],
    }
    assert (await send(client, store, "order.refunded", refund)).status_code == 200
    partial = {
        "order_id": first["order_id"],
        "refund_id": "r2",
        "amount": 1000,
        "lines": [{"line_id": "x", "quantity": 1}],
    }
    assert (await send(client, store, "order.refunded", partial)).status_code == 200
    await send(client, store, "order.cancelled", {"order_id": cancelled["order_id"]})

    until = datetime(2026, 4, 1, tzinfo=UTC)
    async with runtime.pool.acquire() as conn:
        catalogue = await repository.catalogue(conn, store_id=store.store_id)
        pairs = await repository.interactions(
            conn,
            store_id=store.store_id,
            catalogue=catalogue,
            since=datetime(2026, 1, 1, tzinfo=UTC),
            until=until,
            half_life_days=10.0,
        )
    assert catalogue.product.tolist() == ["p1", "p2", "p3"]  # products from order lines
    assert pairs.members.tolist() == ["ada"]
    bought = {str(catalogue.product[i]): k for k, i in enumerate(pairs.item)}
    assert set(bought) == {"p1"}  # p2 fully refunded, p3's order cancelled
    k = bought["p1"]
    assert pairs.orders[k] == 3
    assert pairs.quantity[k] == 2 + 1 + 1
    assert pairs.median_gap[k] == pytest.approx(10.0)
    ages = [(until - datetime(2026, 3, d, 10, tzinfo=UTC)).total_seconds() / DAY for d in (1, 11, 21)]
    assert pairs.recency[k] == pytest.approx(sum(0.5 ** (a / 10) for a in ages))


async def test_postgres_and_numpy_paths_agree(
    client: httpx.AsyncClient, store: StoreCreated, runtime: Runtime
) -> None:
    lines = synthetic.history(members_per_group=5, days=90)
    purchases, catalogue, _ = synthetic.as_arrays(lines)
    until = synthetic.START.timestamp() + 80 * DAY
    expected = dataset.aggregate(purchases, catalogue, until=until, half_life_days=30.0)
    async with runtime.pool.acquire() as conn, conn.transaction():
        await synthetic.insert(conn, store.store_id, lines)
        db_catalogue = await repository.catalogue(conn, store_id=store.store_id)
        got = await repository.interactions(
            conn,
            store_id=store.store_id,
            catalogue=db_catalogue,
            since=synthetic.START,
            until=datetime.fromtimestamp(until, UTC),
            half_life_days=30.0,
        )
    assert db_catalogue.product.tolist() == catalogue.product.tolist()
    order_e = np.lexsort((expected.item, expected.user))
    order_g = np.lexsort((got.item, got.user))
    assert got.members.tolist() == expected.members.tolist()
    for name in ("user", "item", "orders", "quantity", "recency", "first_at", "last_at", "median_gap"):
        np.testing.assert_allclose(
            getattr(got, name)[order_g],
            getattr(expected, name)[order_e],
            rtol=1e-9,
            equal_nan=True,
            err_msg=name,
        )
