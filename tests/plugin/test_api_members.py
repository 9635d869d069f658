"""The member-facing API: member tokens, the member view with its ETag, the ledger, adjustments."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from tests.conftest import bearer, make_store
from tests.events import make_customer, make_line, make_order, send
from tests.members import balance, check_invariants, new_member

Client = httpx.AsyncClient


def key(store: StoreCreated, scope: str) -> dict[str, str]:
    return bearer(store.api_keys[scope])


async def member_token(client: Client, store: StoreCreated, cid: str, **body: object) -> str:
    response = await client.post(
        f"/v1/members/{cid}/tokens", json=body or None, headers=key(store, "storefront")
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TestMemberTokens:
    @pytest.mark.parametrize("scope", ["storefront", "channel"])
    async def test_storefront_or_channel_key_issues_a_token(
        self, client: Client, store: StoreCreated, scope: str
    ) -> None:
        cid = await new_member(client, store, points=10)
        response = await client.post(f"/v1/members/{cid}/tokens", headers=key(store, scope))
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["token"].startswith("mt_")
        expires_at = datetime.fromisoformat(body["expires_at"])
        assert timedelta(minutes=59) < expires_at - datetime.now(UTC) <= timedelta(hours=1)

    async def test_lifetime_can_be_chosen(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        response = await client.post(
            f"/v1/members/{cid}/tokens", json={"ttl_seconds": 300}, headers=key(store, "channel")
        )
        expires_at = datetime.fromisoformat(response.json()["expires_at"])
        assert expires_at - datetime.now(UTC) <= timedelta(seconds=300)
        too_long = await client.post(
            f"/v1/members/{cid}/tokens", json={"ttl_seconds": 10**6}, headers=key(store, "channel")
        )
        assert too_long.status_code == 422

    @pytest.mark.parametrize("scope", ["marketer", "app"])
    async def test_other_keys_cannot_issue_tokens(
        self, client: Client, store: StoreCreated, scope: str
    ) -> None:
        cid = await new_member(client, store, points=10)
        response = await client.post(f"/v1/members/{cid}/tokens", headers=key(store, scope))
        assert response.status_code == 403

    async def test_a_member_token_cannot_issue_tokens(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        token = await member_token(client, store, cid)
        response = await client.post(f"/v1/members/{cid}/tokens", headers=bearer(token))
        assert response.status_code == 403

    async def test_unknown_member_gets_no_token(self, client: Client, store: StoreCreated) -> None:
        response = await client.post("/v1/members/nobody/tokens", headers=key(store, "storefront"))
        assert response.status_code == 404

    async def test_token_acts_for_its_member(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        token = await member_token(client, store, cid)
        me = await client.get("/v1/me", headers=bearer(token))
        assert me.json() | {"key_id": None, "expires_at": None} == {
            "store_id": store.store_id,
            "scope": "app",
            "key_id": None,
            "customer_id": cid,
            "expires_at": None,
        }
        assert datetime.fromisoformat(me.json()["expires_at"]) > datetime.now(UTC)
        assert (await client.get(f"/v1/members/{cid}", headers=bearer(token))).status_code == 200
        assert (await client.get(f"/v1/members/{cid}/ledger", headers=bearer(token))).status_code == 200

    async def test_token_sees_no_other_member_as_if_unknown(
        self, client: Client, store: StoreCreated
    ) -> None:
        cid = await new_member(client, store, points=10)
        other = await new_member(client, store, points=10)
        token = await member_token(client, store, cid)
        for path in (f"/v1/members/{other}", f"/v1/members/{other}/ledger"):
            response = await client.get(path, headers=bearer(token))
            assert response.status_code == 404
            assert response.json()["detail"] == f"no member {other}"
        redeem = await client.post(
            f"/v1/members/{other}/redemptions",
            json={"reward_id": "voucher-5"},
            headers=bearer(token) | {"Idempotency-Key": "k"},
        )
        assert redeem.status_code == 404
        unknown = await client.get("/v1/members/nobody", headers=key(store, "channel"))
        assert unknown.json()["detail"] == "no member nobody"

    async def test_token_reads_only_its_own_store(self, client: Client, store: StoreCreated) -> None:
        other_store = await make_store(client)
        customer = make_customer()
        cid = await new_member(client, store, points=10, customer=customer)
        await new_member(client, other_store, points=99, customer=customer)
        token = await member_token(client, store, cid)
        view = await client.get(f"/v1/members/{cid}", headers=bearer(token))
        assert view.json()["points"]["balance"] == 10

    async def test_expired_token_is_401(
        self, client: Client, store: StoreCreated, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cid = await new_member(client, store, points=10)
        token = await member_token(client, store, cid, ttl_seconds=60)
        later = datetime.now(UTC) + timedelta(seconds=61)
        monkeypatch.setattr(runtime, "clock", lambda: later)
        response = await client.get(f"/v1/members/{cid}", headers=bearer(token))
        assert response.status_code == 401

    async def test_tampered_or_foreign_token_is_401(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        other = await new_member(client, store, points=10)
        token = await member_token(client, store, cid)
        payload, mac = token.removeprefix("mt_").split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        forged_payload = base64.urlsafe_b64encode(json.dumps(claims | {"c": other}).encode()).decode()
        forged = f"mt_{forged_payload.rstrip('=')}.{mac}"
        other_store = await make_store(client)
        foreign = await member_token(client, other_store, await new_member(client, other_store, points=1))
        moved = "mt_" + foreign.removeprefix("mt_").split(".")[0] + "." + mac
        for bad in (forged, token[:-4], "mt_garbage", moved):
            response = await client.get(f"/v1/members/{other}", headers=bearer(bad))
            assert response.status_code == 401, bad

    async def test_member_token_cannot_adjust(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        token = await member_token(client, store, cid)
        response = await client.post(
            f"/v1/members/{cid}/adjustments", json={"points": 100, "reason": "me"}, headers=bearer(token)
        )
        assert response.status_code == 403

    async def test_an_app_key_reads_and_redeems_only_with_a_member_token(
        self, client: Client, store: StoreCreated
    ) -> None:
        # An app key ships inside the app, where anyone can read it: alone it acts for no member.
        cid = await new_member(client, store, points=1000)
        assert (await client.get(f"/v1/members/{cid}", headers=key(store, "app"))).status_code == 403
        body = {"reward_id": "voucher-5"}
        as_key = await client.post(
            f"/v1/members/{cid}/redemptions", json=body, headers=key(store, "app") | {"Idempotency-Key": "a"}
        )
        assert as_key.status_code == 403
        token = await member_token(client, store, cid)
        as_member = await client.post(
            f"/v1/members/{cid}/redemptions", json=body, headers=bearer(token) | {"Idempotency-Key": "a"}
        )
        assert as_member.status_code == 201


class TestMemberView:
    async def test_profile_tier_points_and_orders(self, client: Client, store: StoreCreated) -> None:
        soon = datetime.now(UTC) - timedelta(days=350)  # its points expire in 15 days
        customer = make_customer(first_name="Grace", last_name="Hopper", email="grace@example.com")
        cid = await new_member(client, store, points=120, placed_at=iso(soon), customer=customer)
        order = make_order(
            customer=customer, lines=[make_line(unit_price=8000)], placed_at=iso(datetime.now(UTC))
        )
        await send(client, store, "order.paid", order)
        await send(
            client,
            store,
            "order.refunded",
            {"order_id": order["order_id"], "refund_id": "r1", "amount": 2000},
        )
        response = await client.get(f"/v1/members/{cid}", headers=key(store, "channel"))
        assert response.status_code == 200
        view = response.json()
        assert view["customer_id"] == cid
        assert view["email"] == "grace@example.com"
        assert view["name"] == "Grace Hopper"
        assert view["tier"]["code"] == "member"
        assert view["tier"]["name"] == "Member"
        # Spend over the window, net of refunds: 120.00 + 80.00 - 20.00 EUR.
        assert view["tier"]["progress"] == {
            "metric": "spend",
            "current": 18000,
            "next": "silver",
            "needed": 32000,
        }
        assert view["points"]["balance"] == 120 + 80 - 20
        assert view["points"]["available"] == 180
        assert view["points"]["pending"] == 0
        [expiring] = view["points"]["expiring"]
        assert expiring["points"] == 120
        assert datetime.fromisoformat(expiring["expires_at"]) - datetime.now(UTC) < timedelta(days=16)
        assert view["recent_orders"][0] | {"placed_at": None} == {
            "order_id": order["order_id"],
            "placed_at": None,
            "subtotal": 8000,
            "refunded": 2000,
            "currency": "EUR",
            "points": 60,
            "status": "paid",
        }
        assert (view["preferences"], view["open_cases"], view["suggestions"]) == ({}, [], [])

    async def test_etag_answers_304_until_something_changes(
        self, client: Client, store: StoreCreated
    ) -> None:
        cid = await new_member(client, store, points=10)
        first = await client.get(f"/v1/members/{cid}", headers=key(store, "channel"))
        etag = first.headers["etag"]
        same = await client.get(f"/v1/members/{cid}", headers=key(store, "channel") | {"If-None-Match": etag})
        assert same.status_code == 304
        assert same.headers["etag"] == etag
        assert same.content == b""
        listed = await client.get(
            f"/v1/members/{cid}", headers=key(store, "channel") | {"If-None-Match": f'"other", W/{etag}'}
        )
        assert listed.status_code == 304
        await client.post(
            f"/v1/members/{cid}/adjustments",
            json={"points": 5, "reason": "hello"},
            headers=key(store, "marketer"),
        )
        changed = await client.get(
            f"/v1/members/{cid}", headers=key(store, "channel") | {"If-None-Match": etag}
        )
        assert changed.status_code == 200
        assert changed.headers["etag"] != etag
        assert changed.json()["points"]["balance"] == 15

    async def test_unknown_member_is_404(self, client: Client, store: StoreCreated) -> None:
        response = await client.get("/v1/members/nobody", headers=key(store, "marketer"))
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"

    async def test_storefront_key_cannot_read_members(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        response = await client.get(f"/v1/members/{cid}", headers=key(store, "storefront"))
        assert response.status_code == 403


class TestLedger:
    async def test_pages_newest_first(self, client: Client, store: StoreCreated) -> None:
        customer = make_customer()
        cid = await new_member(client, store, points=10, customer=customer)
        for points in (20, 30, 40):
            order = make_order(customer=customer, lines=[make_line(unit_price=points * 100)])
            await send(client, store, "order.paid", order)
        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
            page = (
                await client.get(f"/v1/members/{cid}/ledger", params=params, headers=key(store, "channel"))
            ).json()
            seen += [entry["points"] for entry in page["entries"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [40, 30, 20, 10]
        assert pages == 2

    async def test_entry_says_why(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        page = (await client.get(f"/v1/members/{cid}/ledger", headers=key(store, "channel"))).json()
        [entry] = page["entries"]
        assert entry["kind"] == "earn"
        assert entry["order_id"] is not None
        assert entry["reason"] == f"order {entry['order_id']}"
        assert entry["rules"] == ["tier:memberx1"]
        assert entry["expires_at"] == "2027-11-20T10:00:00Z"
        assert {"program_version", "created_at", "entry_id"} <= set(entry)

    @pytest.mark.parametrize("cursor", ["!!!", "ZXg", base64.urlsafe_b64encode(b"e12x").decode()])
    async def test_bad_cursor_is_422(self, client: Client, store: StoreCreated, cursor: str) -> None:
        cid = await new_member(client, store, points=10)
        response = await client.get(
            f"/v1/members/{cid}/ledger", params={"cursor": cursor}, headers=key(store, "channel")
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "cursor"

    async def test_unknown_member_is_404(self, client: Client, store: StoreCreated) -> None:
        response = await client.get("/v1/members/nobody/ledger", headers=key(store, "channel"))
        assert response.status_code == 404


class TestAdjustments:
    async def test_positive_adjustment_is_an_expiring_lot(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=10)
        response = await client.post(
            f"/v1/members/{cid}/adjustments",
            json={"points": 250, "reason": "goodwill: late delivery"},
            headers=key(store, "marketer"),
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["points"] == 250
        assert created["balance"] == 260
        [entry] = (
            await client.get(f"/v1/members/{cid}/ledger?limit=1", headers=key(store, "channel"))
        ).json()["entries"]
        assert entry["entry_id"] == created["entry_id"]
        assert entry["kind"] == "adjust"
        assert entry["reason"] == "adjustment: goodwill: late delivery"
        expires_at = datetime.fromisoformat(entry["expires_at"])
        assert abs(expires_at - (datetime.now(UTC) + timedelta(days=365))) < timedelta(minutes=1)
        async with runtime.pool.acquire() as conn:
            await check_invariants(conn, store.store_id)

    async def test_negative_adjustment_never_makes_a_debt(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=10)
        marketer = key(store, "marketer")
        too_much = await client.post(
            f"/v1/members/{cid}/adjustments", json={"points": -11, "reason": "oops"}, headers=marketer
        )
        assert too_much.status_code == 409
        assert too_much.json()["type"] == "urn:patron:problem:insufficient-points"
        fine = await client.post(
            f"/v1/members/{cid}/adjustments", json={"points": -10, "reason": "oops"}, headers=marketer
        )
        assert fine.json()["balance"] == 0
        async with runtime.pool.acquire() as conn:
            assert await balance(conn, store.store_id, cid) == 0
            await check_invariants(conn, store.store_id)

    @pytest.mark.parametrize(
        "body",
        [
            {"points": 0, "reason": "x"},
            {"points": 5, "reason": ""},
            {"points": 5},
            {"points": 5, "reason": "x", "y": 1},
        ],
    )
    async def test_invalid_body_is_422(
        self, client: Client, store: StoreCreated, body: dict[str, object]
    ) -> None:
        cid = await new_member(client, store, points=10)
        response = await client.post(
            f"/v1/members/{cid}/adjustments", json=body, headers=key(store, "marketer")
        )
        assert response.status_code == 422, response.text

    async def test_idempotency_key_is_optional_and_honoured(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=10)
        headers = key(store, "marketer") | {"Idempotency-Key": "adj-1"}
        body = {"points": 5, "reason": "bonus"}
        first = await client.post(f"/v1/members/{cid}/adjustments", json=body, headers=headers)
        again = await client.post(f"/v1/members/{cid}/adjustments", json=body, headers=headers)
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        plain = await client.post(f"/v1/members/{cid}/adjustments", json=body, headers=key(store, "marketer"))
        assert plain.json()["balance"] == 20
        async with runtime.pool.acquire() as conn:
            assert await balance(conn, store.store_id, cid) == 20

    @pytest.mark.parametrize("scope", ["channel", "app", "storefront"])
    async def test_only_marketers_adjust(self, client: Client, store: StoreCreated, scope: str) -> None:
        cid = await new_member(client, store, points=10)
        response = await client.post(
            f"/v1/members/{cid}/adjustments", json={"points": 5, "reason": "x"}, headers=key(store, scope)
        )
        assert response.status_code == 403

    async def test_unknown_member_is_404(self, client: Client, store: StoreCreated) -> None:
        response = await client.post(
            "/v1/members/nobody/adjustments",
            json={"points": 5, "reason": "x"},
            headers=key(store, "marketer"),
        )
        assert response.status_code == 404
