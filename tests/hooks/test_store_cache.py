from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hooks import store_cache
from hooks.store_cache import StoreCache
from loyalty.repository.stores import StoreRow


def make_store(secret: str = "whsec_old") -> StoreRow:  # noqa: S107 - a test value
    return StoreRow(
        store_id="s1",
        name="Shop",
        currency="EUR",
        timezone="UTC",
        webhook_secret=secret,
        platform_secrets={},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


class TestStoreCache:
    @pytest.fixture
    def rows(self, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        rows: dict[str, Any] = {"s1": make_store(), "reads": 0}

        async def get_store(conn: object, *, store_id: str) -> StoreRow | None:
            rows["reads"] += 1
            return rows.get(store_id)

        monkeypatch.setattr(store_cache.stores_repo, "get_store", get_store)
        return rows

    async def test_serves_from_memory_until_the_ttl(self, rows: dict[str, Any]) -> None:
        now = [0.0]
        cache = StoreCache(ttl=10, clock=lambda: now[0])
        assert await cache.get(None, "s1") == (rows["s1"], False)
        assert await cache.get(None, "s1") == (rows["s1"], True)
        now[0] = 10.0
        assert (await cache.get(None, "s1"))[1] is False
        assert rows["reads"] == 2

    async def test_fresh_reads_a_rotated_secret(self, rows: dict[str, Any]) -> None:
        cache = StoreCache(ttl=10, clock=lambda: 0.0)
        await cache.get(None, "s1")
        rows["s1"] = make_store("whsec_new")
        assert (await cache.get(None, "s1"))[0].webhook_secret == "whsec_old"
        assert (await cache.get(None, "s1", fresh=True))[0].webhook_secret == "whsec_new"
        assert (await cache.get(None, "s1"))[0].webhook_secret == "whsec_new"

    async def test_an_unknown_store_is_not_cached(self, rows: dict[str, Any]) -> None:
        cache = StoreCache(ttl=10, clock=lambda: 0.0)
        assert await cache.get(None, "nope") == (None, False)
        assert await cache.get(None, "nope") == (None, False)
        assert rows["reads"] == 2
