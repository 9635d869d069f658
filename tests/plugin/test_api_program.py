"""GET/PUT /v1/program with ETag and If-Match, validation problems, scopes, and preview == publish."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from loyalty.stores import StoreCreated
from tests.conftest import bearer
from tests.sql_rows import insert_member, insert_order

Client = httpx.AsyncClient


def marketer(store: StoreCreated) -> dict[str, str]:
    return bearer(store.api_keys["marketer"])


async def read(client: Client, store: StoreCreated) -> tuple[dict[str, Any], str]:
    response = await client.get("/v1/program", headers=marketer(store))
    assert response.status_code == 200, response.text
    return response.json(), response.headers["etag"]


class TestReadAndPublish:
    async def test_a_new_store_has_the_default_program_as_version_1(
        self, client: Client, store: StoreCreated
    ) -> None:
        document, etag = await read(client, store)
        assert (document["version"], etag) == (1, '"v1"')
        assert [level["code"] for level in document["tiers"]["levels"]] == ["member", "silver", "gold"]

    async def test_put_with_the_current_etag_publishes_the_next_version(
        self, client: Client, store: StoreCreated
    ) -> None:
        document, etag = await read(client, store)
        document["points"]["per_currency_unit"] = 2
        response = await client.put(
            "/v1/program", json=document, headers=marketer(store) | {"If-Match": etag}
        )
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"v2"'
        assert response.json()["version"] == 2
        again, etag = await read(client, store)
        assert (again["points"]["per_currency_unit"], etag) == (2.0, '"v2"')

    async def test_a_stale_etag_is_412(self, client: Client, store: StoreCreated) -> None:
        document, etag = await read(client, store)
        first = await client.put("/v1/program", json=document, headers=marketer(store) | {"If-Match": etag})
        assert first.status_code == 200
        stale = await client.put("/v1/program", json=document, headers=marketer(store) | {"If-Match": etag})
        assert stale.status_code == 412
        assert stale.headers["content-type"] == "application/problem+json"
        assert stale.json()["type"] == "urn:patron:problem:precondition-failed"
        assert (await read(client, store))[1] == '"v2"'

    async def test_a_missing_if_match_is_428(self, client: Client, store: StoreCreated) -> None:
        document, _ = await read(client, store)
        response = await client.put("/v1/program", json=document, headers=marketer(store))
        assert response.status_code == 428
        assert response.json()["type"] == "urn:patron:problem:precondition-required"

    async def test_star_and_lists_match(self, client: Client, store: StoreCreated) -> None:
        document, _ = await read(client, store)
        star = await client.put("/v1/program", json=document, headers=marketer(store) | {"If-Match": "*"})
        assert star.status_code == 200
        listed = await client.put(
            "/v1/program", json=document, headers=marketer(store) | {"If-Match": 'W/"v1", "v2"'}
        )
        assert listed.headers["etag"] == '"v3"'


class TestValidation:
    @pytest.mark.parametrize(
        ("change", "field"),
        [
            (lambda d: d["tiers"]["levels"][1].update(threshold="lots"), "tiers.levels[1].threshold"),
            (lambda d: d["tiers"]["levels"][2].update(threshold=10), "tiers.levels[2].threshold"),
            (lambda d: d["tiers"]["levels"][0].update(multiplier=0), "tiers.levels[0].multiplier"),
            (lambda d: d["rules"].append({"kind": "moon_bonus"}), "rules[0].kind"),
            (lambda d: d["points"].update(colour="red"), "points"),
            (lambda d: d["rewards"][0].update(cost=0), "rewards[0].cost"),
        ],
    )
    async def test_invalid_document_is_422_naming_the_field(
        self, client: Client, store: StoreCreated, change: Any, field: str
    ) -> None:
        document, etag = await read(client, store)
        change(document)
        for path, headers in (("/v1/program", {"If-Match": etag}), ("/v1/program/preview", {})):
            method = client.put if path == "/v1/program" else client.post
            response = await method(path, json=document, headers=marketer(store) | headers)
            assert response.status_code == 422, response.text
            problem = response.json()
            assert problem["type"] == "urn:patron:problem:validation"
            assert [error["field"] for error in problem["errors"]] == [field]
        assert (await read(client, store))[1] == '"v1"'


@pytest.mark.parametrize("scope", ["channel", "app", "storefront"])
async def test_only_marketer_keys_reach_the_program(client: Client, store: StoreCreated, scope: str) -> None:
    headers = bearer(store.api_keys[scope])
    assert (await client.get("/v1/program", headers=headers)).status_code == 403
    put = await client.put("/v1/program", json={}, headers=headers | {"If-Match": '"v1"'})
    assert put.status_code == 403
    assert (await client.post("/v1/program/preview", json={}, headers=headers)).status_code == 403


async def test_a_key_sees_only_its_own_stores_program(client: Client, store: StoreCreated) -> None:
    other = await client.post("/v1/admin/stores", json={"name": "Other"}, headers=bearer("test-admin-token"))
    other_store = StoreCreated(**other.json())
    document, etag = await read(client, other_store)
    document["tiers"]["levels"][1]["threshold"] = 1
    await client.put("/v1/program", json=document, headers=marketer(other_store) | {"If-Match": etag})
    mine, my_etag = await read(client, store)
    assert (mine["tiers"]["levels"][1]["threshold"], my_etag) == (50_000, '"v1"')


class TestPreview:
    async def _populate(self, pool: asyncpg.Pool, store_id: str) -> None:
        now = datetime.now(UTC)
        async with pool.acquire() as conn:
            for n, (tier, spend) in enumerate(
                [("member", 10_000), ("member", 40_000), ("member", 40_000), ("silver", 60_000),
                 ("silver", 20_000), ("gold", 160_000), ("gold", 90_000), ("gone", 0)]
            ):  # fmt: skip
                await insert_member(conn, store_id, f"c{n}", tier_code=tier, balance=1_000 * n)
                if spend:
                    await insert_order(
                        conn, store_id, f"c{n}", subtotal=spend, placed_at=now - timedelta(days=3)
                    )

    async def test_preview_then_publish_moves_exactly_the_previewed_members(
        self, client: Client, store: StoreCreated, pool: asyncpg.Pool
    ) -> None:
        await self._populate(pool, store.store_id)
        document, etag = await read(client, store)
        candidate = copy.deepcopy(document)
        candidate["tiers"]["levels"][1]["threshold"] = 30_000
        candidate["tiers"]["levels"][2]["threshold"] = 100_000
        candidate["tiers"]["downgrade_grace_days"] = 0
        response = await client.post("/v1/program/preview", json=candidate, headers=marketer(store))
        assert response.status_code == 200, response.text
        preview = response.json()
        moves = {(m["from"], m["to"]): m["members"] for m in preview["tier_moves"]}
        assert moves == {
            ("member", "silver"): 2,
            ("silver", "member"): 1,
            ("gold", "silver"): 1,
            ("gone", "member"): 1,
        }
        async with pool.acquire() as conn:
            untouched = await conn.fetchval(
                "SELECT count(*) FROM tier_changes WHERE store_id = $1", store.store_id
            )
        assert untouched == 0

        published = await client.put(
            "/v1/program", json=candidate, headers=marketer(store) | {"If-Match": etag}
        )
        assert published.status_code == 200
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT from_tier, to_tier, count(*) AS members FROM tier_changes
                   WHERE store_id = $1 AND program_version = 2 GROUP BY 1, 2""",
                store.store_id,
            )
        assert {(r["from_tier"], r["to_tier"]): r["members"] for r in rows} == moves

    async def test_pending_downgrades_liability_and_typical_order(
        self, client: Client, store: StoreCreated, pool: asyncpg.Pool
    ) -> None:
        await self._populate(pool, store.store_id)
        document, _ = await read(client, store)
        candidate = copy.deepcopy(document)
        candidate["tiers"]["levels"][2]["threshold"] = 200_000  # gold c5 falls below, within grace
        candidate["rewards"] = [{"id": "v", "name": "Voucher", "cost": 400, "kind": "voucher", "value": 500}]
        response = await client.post("/v1/program/preview", json=candidate, headers=marketer(store))
        preview = response.json()
        assert preview["tier_moves"] == [{"from": "gone", "to": "member", "members": 1}]
        # c3 (silver 60000) is fine; c4 (silver, 20000), c5 (gold, 160000), c6 (gold, 90000) are below.
        assert preview["pending_downgrades"] == 3
        assert preview["liability"] == {
            "points_outstanding": 28_000,
            "value_per_point_current": 1.052632,  # voucher-10: 1000 for 950 points
            "value_per_point_candidate": 1.25,
            "value_current": 29_473,
            "value_candidate": 35_000,
            "change": 5_527,
        }
        # The median of 10000, 20000, 40000, 40000, 60000, 90000, 160000 is 40000: 400 EUR.
        assert preview["typical_order"] == {
            "subtotal": 40_000,
            "points_by_tier": {"member": 400, "silver": 500, "gold": 600},
            "points_by_tier_current": {"member": 400, "silver": 500, "gold": 600},
        }
        assert preview["gifts_next_30_days"] == 0

    async def test_typical_order_falls_back_without_orders(self, client: Client, store: StoreCreated) -> None:
        document, _ = await read(client, store)
        response = await client.post("/v1/program/preview", json=document, headers=marketer(store))
        assert response.json()["typical_order"]["subtotal"] == 5000
        assert response.json()["tier_moves"] == []
