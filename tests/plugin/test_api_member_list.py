"""GET /v1/members: the store's members a page at a time, searched by id or email prefix, by level."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from loyalty.stores import StoreCreated
from tests.conftest import bearer, make_store
from tests.events import make_customer, make_line, make_order, send
from tests.sql_rows import insert_member

Client = httpx.AsyncClient


def marketer(store: StoreCreated) -> dict[str, str]:
    return bearer(store.api_keys["marketer"])


async def listing(client: Client, store: StoreCreated, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/members", params=params, headers=marketer(store))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(page: dict[str, Any]) -> list[str]:
    return [item["customer_id"] for item in page["items"]]


async def test_pages_by_customer_id_with_a_summary_of_each(
    client: Client, store: StoreCreated, pool: asyncpg.Pool
) -> None:
    customer = make_customer(customer_id="m-ada", email="Ada@Example.com")
    order = make_order(customer=customer, lines=[make_line(unit_price=60_000)])
    assert (await send(client, store, "order.paid", order)).json() == {"status": "applied"}
    async with pool.acquire() as conn:
        for cid in ("m-c", "m-b", "m-e", "m-d"):
            await insert_member(conn, store.store_id, cid)

    first = await listing(client, store, limit=2)
    assert ids(first) == ["m-ada", "m-b"]
    ada = first["items"][0]
    assert ada | {"tier_since": None, "updated_at": None} == {
        "customer_id": "m-ada",
        "email": "Ada@Example.com",
        "name": "Ada Lovelace",
        "tier": "silver",
        "tier_since": None,
        "balance": 600,
        "orders_count": 1,
        "updated_at": None,
    }
    second = await listing(client, store, limit=2, cursor=first["next_cursor"])
    third = await listing(client, store, limit=2, cursor=second["next_cursor"])
    assert (ids(second), ids(third), third["next_cursor"]) == (["m-c", "m-d"], ["m-e"], None)


async def test_search_is_a_prefix_of_the_id_or_the_email_and_tier_filters(
    client: Client, store: StoreCreated, pool: asyncpg.Pool
) -> None:
    for cid, email in (("k1", "grace@example.com"), ("k2", "GRETA@example.com"), ("g3", "ada@example.com")):
        await send(client, store, "customer.upserted", make_customer(customer_id=cid, email=email))
    async with pool.acquire() as conn:
        await insert_member(conn, store.store_id, "k_%", tier_code="gold")

    assert ids(await listing(client, store, q="gr")) == ["k1", "k2"]
    assert ids(await listing(client, store, q="g")) == ["g3", "k1", "k2"]
    assert ids(await listing(client, store, q="k")) == ["k1", "k2", "k_%"]
    # LIKE's wildcards are literal: `k_` does not match k1, `%` matches nothing but itself.
    assert ids(await listing(client, store, q="k_")) == ["k_%"]
    assert ids(await listing(client, store, q="%")) == []
    assert ids(await listing(client, store, tier="gold")) == ["k_%"]
    assert ids(await listing(client, store, tier="member", q="k")) == ["k1", "k2"]


async def test_erased_members_are_left_out(client: Client, store: StoreCreated) -> None:
    for cid in ("e1", "e2"):
        await send(client, store, "customer.upserted", make_customer(customer_id=cid))
    assert (await client.delete("/v1/members/e1", headers=marketer(store))).status_code in (200, 204)
    assert ids(await listing(client, store)) == ["e2"]


async def test_a_key_lists_only_its_own_store(client: Client, store: StoreCreated) -> None:
    other = await make_store(client)
    await send(client, other, "customer.upserted", make_customer(customer_id="theirs"))
    await send(client, store, "customer.upserted", make_customer(customer_id="mine"))
    assert ids(await listing(client, store)) == ["mine"]
    response = await client.get("/v1/members", headers=bearer(store.api_keys["channel"]))
    assert [item["customer_id"] for item in response.json()["items"]] == ["mine"]


@pytest.mark.parametrize("scope", ["app", "storefront"])
async def test_app_and_storefront_keys_cannot_list(client: Client, store: StoreCreated, scope: str) -> None:
    response = await client.get("/v1/members", headers=bearer(store.api_keys[scope]))
    assert response.status_code == 403


@pytest.mark.parametrize(("params", "field"), [({"cursor": "!!"}, "cursor"), ({"limit": 0}, "limit")])
async def test_bad_parameters_are_422_naming_them(
    client: Client, store: StoreCreated, params: dict[str, Any], field: str
) -> None:
    response = await client.get("/v1/members", params=params, headers=marketer(store))
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]
