"""Need prediction: the member's own rhythm, then consumable_days, then the population's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest

from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from recommender import dataset, needs
from recommender.dataset import SECONDS_PER_DAY, Catalogue, Purchases
from tests.recommender import synthetic

DAY = SECONDS_PER_DAY


def _catalogue(consumable: dict[str, float], category: dict[str, str]) -> Catalogue:
    ids = sorted(set(consumable) | set(category))
    return Catalogue(
        product=np.array(ids, dtype=np.str_),
        category=np.array([category.get(i, "") for i in ids], dtype=np.str_),
        brand=np.full(len(ids), "", dtype=np.str_),
        price=np.full(len(ids), np.nan),
        tags=[() for _ in ids],
        consumable_days=np.array([consumable.get(i, np.nan) for i in ids]),
        active=np.ones(len(ids), dtype=bool),
    )


def _rhythms(rows: list[tuple[str, str, float]], catalogue: Catalogue, until: float = 400) -> dict:
    purchases = Purchases(
        member=np.array([r[0] for r in rows], dtype=np.str_),
        product=np.array([r[1] for r in rows], dtype=np.str_),
        at=np.array([r[2] * DAY for r in rows]),
        quantity=np.ones(len(rows)),
    )
    pairs = dataset.aggregate(purchases, catalogue, until=until * DAY, half_life_days=30)
    r = needs.rhythm(pairs, catalogue)
    out = {}
    for k in range(len(pairs.item)):
        key = (str(pairs.members[pairs.user[k]]), str(catalogue.product[pairs.item[k]]))
        out[key] = (r.days[k], r.confidence[k], needs.BASES[r.basis[k]], r.due_at(pairs)[k] / DAY)
    return out


class TestRhythm:
    def test_own_median_gap_comes_first(self) -> None:
        catalogue = _catalogue({"coffee": 30.0}, {"coffee": "drinks"})
        got = _rhythms(
            [("m", "coffee", 0), ("m", "coffee", 10), ("m", "coffee", 22), ("m", "coffee", 100)], catalogue
        )
        days, confidence, basis, due = got["m", "coffee"]
        assert (days, basis, due) == (12.0, "member", 112.0)  # gaps 10, 12, 78: the median resists 78
        assert confidence == pytest.approx(3 / 5)

    def test_more_gaps_more_confidence(self) -> None:
        catalogue = _catalogue({}, {"tea": "drinks"})
        two = _rhythms([("m", "tea", 0), ("m", "tea", 10)], catalogue)["m", "tea"][1]
        five = _rhythms([("m", "tea", d) for d in range(0, 60, 10)], catalogue)["m", "tea"][1]
        assert 0 < two < five < 1

    def test_one_purchase_falls_back_to_consumable_days(self) -> None:
        catalogue = _catalogue({"coffee": 30.0}, {"coffee": "drinks"})
        days, confidence, basis, due = _rhythms([("m", "coffee", 5)], catalogue)["m", "coffee"]
        assert (days, basis, due) == (30.0, "product", 35.0)
        assert confidence == needs.PRODUCT_CONFIDENCE

    def test_then_the_population_rhythm_of_the_product(self) -> None:
        catalogue = _catalogue({}, {"soap": "care"})
        rows = [(f"r{i}", "soap", d) for i in range(4) for d in (0, 20 + i, 40 + 2 * i)]
        got = _rhythms([*rows, ("new", "soap", 50)], catalogue)
        days, confidence, basis, _ = got["new", "soap"]
        assert basis == "population"
        assert days == pytest.approx(np.median([20 + i for i in range(4)]))
        assert 0 < confidence < needs.POPULATION_CONFIDENCE

    def test_then_the_category_rhythm(self) -> None:
        catalogue = _catalogue({}, {"soap": "care", "shampoo": "care"})
        rows = [(f"r{i}", "soap", d) for i in range(4) for d in (0, 15, 30)]
        days, _, basis, _ = _rhythms([*rows, ("new", "shampoo", 50)], catalogue)["new", "shampoo"]
        assert (days, basis) == (15.0, "category")

    def test_a_product_nobody_rebuys_has_no_rhythm(self) -> None:
        catalogue = _catalogue({}, {"sofa": "furniture"})
        days, confidence, basis, _ = _rhythms([(f"m{i}", "sofa", i) for i in range(10)], catalogue)[
            "m1", "sofa"
        ]
        assert np.isnan(days)
        assert (confidence, basis) == (0.0, "none")


async def test_due_reads_postgres_for_the_care_engine(
    client: httpx.AsyncClient, store: StoreCreated, runtime: Runtime
) -> None:
    lines = synthetic.history(members_per_group=3, days=60)
    async with runtime.pool.acquire() as conn:
        async with conn.transaction():
            await synthetic.insert(conn, store.store_id, lines)
        now = synthetic.START + timedelta(days=61)
        found = await needs.due(conn, store_id=store.store_id, now=now, within=timedelta(days=14))
    assert found, "the staples are bought on a rhythm: some are due"
    staples = [n for n in found if n.product_id in ("tea-0", "wine-0") and n.basis == "member"]
    assert staples
    for need in staples:
        expected = 14 if need.product_id == "tea-0" else 30
        assert need.rhythm_days == expected
        assert need.due_at == need.last_bought_at + timedelta(days=expected)
        assert need.due_at <= now + timedelta(days=14)
    assert [n.due_at for n in found] == sorted(n.due_at for n in found)
    assert all(n.due_at.tzinfo == UTC for n in found)
    assert datetime(2026, 1, 1, tzinfo=UTC) < found[0].last_bought_at
