"""The outbound webhook API: endpoints (CRUD, validation, SSRF refusal) and deliveries (list, replay)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import msgspec
import pytest

from loyalty.stores import Scope, StoreCreated
from plugin.runtime import Runtime
from tests.conftest import bearer, make_store
from tests.hooks.outbound import Clock, emit, forget_endpoints, make_pump, settle
from tests.receiver import OK, Answer, Receiver

Client = httpx.AsyncClient


def marketer(store: StoreCreated) -> dict[str, str]:
    return bearer(store.api_keys[Scope.marketer])


@pytest.fixture
def allow_private(runtime: Runtime) -> Iterator[None]:
    """PATRON_ALLOW_PRIVATE_WEBHOOK_TARGETS=1 for one test (the receivers live on 127.0.0.1)."""
    settings = runtime.settings
    runtime.settings = msgspec.structs.replace(settings, allow_private_webhook_targets=True)
    yield
    runtime.settings = settings


@pytest.fixture
async def cleanup(runtime: Runtime, store: StoreCreated) -> AsyncIterator[None]:
    yield
    await forget_endpoints(runtime, store)


async def create(client: Client, store: StoreCreated, **body: Any) -> httpx.Response:
    body = {"url": "https://8.8.8.8/hooks", "events": ["points.changed"]} | body
    return await client.post("/v1/webhook-endpoints", json=body, headers=marketer(store))


@pytest.mark.usefixtures("cleanup")
class TestEndpoints:
    async def test_create_shows_the_secret_once(self, client: Client, store: StoreCreated) -> None:
        response = await create(client, store, events=["points.changed", "tier.changed"], description="crm")
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["secret"].startswith("whsec_")
        assert created["endpoint_id"].startswith("we_")
        assert (created["url"], created["events"], created["enabled"]) == (
            "https://8.8.8.8/hooks",
            ["points.changed", "tier.changed"],
            True,
        )
        fetched = await client.get(f"/v1/webhook-endpoints/{created['endpoint_id']}", headers=marketer(store))
        assert fetched.status_code == 200
        assert "secret" not in fetched.json()
        assert fetched.json()["description"] == "crm"

    async def test_list_paginates_with_a_cursor(self, client: Client, store: StoreCreated) -> None:
        made = [(await create(client, store)).json()["endpoint_id"] for _ in range(3)]
        first = (await client.get("/v1/webhook-endpoints?limit=2", headers=marketer(store))).json()
        assert [item["endpoint_id"] for item in first["items"]] == made[:2]
        second = await client.get(
            "/v1/webhook-endpoints",
            params={"limit": 2, "cursor": first["next_cursor"]},
            headers=marketer(store),
        )
        assert [item["endpoint_id"] for item in second.json()["items"]] == made[2:]
        assert second.json()["next_cursor"] is None

    async def test_update_and_delete(self, client: Client, store: StoreCreated) -> None:
        endpoint_id = (await create(client, store)).json()["endpoint_id"]
        path = f"/v1/webhook-endpoints/{endpoint_id}"
        response = await client.patch(
            path, json={"events": ["reward.issued"], "enabled": False}, headers=marketer(store)
        )
        assert response.status_code == 200, response.text
        assert (response.json()["events"], response.json()["enabled"]) == (["reward.issued"], False)
        assert response.json()["url"] == "https://8.8.8.8/hooks", "absent fields are kept"
        assert (await client.delete(path, headers=marketer(store))).status_code == 204
        assert (await client.get(path, headers=marketer(store))).status_code == 404

    async def test_unknown_event_is_422_naming_events(self, client: Client, store: StoreCreated) -> None:
        response = await create(client, store, events=["points.changed", "order.shipped"])
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"].startswith("events")

    @pytest.mark.parametrize(
        "url",
        ["http://127.0.0.1:9000/hook", "http://localhost/hook", "http://[::1]/hook", "http://10.0.0.5/hook"],
    )
    async def test_private_url_is_refused(self, client: Client, store: StoreCreated, url: str) -> None:
        response = await create(client, store, url=url)
        assert response.status_code == 422
        problem = response.json()
        assert problem["type"] == "urn:patron:problem:validation"
        assert problem["errors"][0]["field"] == "url"
        endpoint_id = (await create(client, store)).json()["endpoint_id"]
        patched = await client.patch(
            f"/v1/webhook-endpoints/{endpoint_id}", json={"url": url}, headers=marketer(store)
        )
        assert patched.status_code == 422

    @pytest.mark.usefixtures("allow_private")
    async def test_private_url_is_allowed_with_the_flag(self, client: Client, store: StoreCreated) -> None:
        assert (await create(client, store, url="http://127.0.0.1:9000/hook")).status_code == 201

    async def test_other_scopes_and_other_stores_see_nothing(
        self, client: Client, store: StoreCreated
    ) -> None:
        endpoint_id = (await create(client, store)).json()["endpoint_id"]
        channel = bearer(store.api_keys[Scope.channel])
        assert (await client.get("/v1/webhook-endpoints", headers=channel)).status_code == 403
        other = await make_store(client)
        response = await client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=marketer(other))
        assert response.status_code == 404
        assert (await client.get("/v1/webhook-endpoints", headers=marketer(other))).json()["items"] == []


@pytest.mark.usefixtures("allow_private", "cleanup")
class TestDeliveries:
    async def test_list_filter_get_and_replay(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        clock = Clock()
        async with Receiver() as receiver:
            receiver.behaviour = lambda request: Answer(status=500) if b'"seq":1' in request.body else OK
            url = receiver.url()
            endpoint_id = (await create(client, store, url=url)).json()["endpoint_id"]
            for number in (1, 2, 3):
                await emit(runtime, store, f"c{number}", number)
            pump = make_pump(runtime, clock)
            try:
                await settle(pump, clock, runtime, store)
                headers = marketer(store)
                listed = (await client.get("/v1/deliveries", headers=headers)).json()
                assert [item["status"] for item in listed["items"]] == ["delivered", "delivered", "dead"]
                dead = (await client.get("/v1/deliveries?status=dead", headers=headers)).json()["items"]
                assert [item["customer_id"] for item in dead] == ["c1"]
                assert dead[0]["endpoint_id"] == endpoint_id
                paged = (await client.get("/v1/deliveries?limit=2", headers=headers)).json()
                rest = await client.get(f"/v1/deliveries?cursor={paged['next_cursor']}", headers=headers)
                assert [item["delivery_id"] for item in paged["items"] + rest.json()["items"]] == [
                    item["delivery_id"] for item in listed["items"]
                ]
                query = f"/v1/deliveries?endpoint_id={endpoint_id}&event=tier.changed"
                assert (await client.get(query, headers=headers)).json()["items"] == []

                detail = (
                    await client.get(f"/v1/deliveries/{dead[0]['delivery_id']}", headers=headers)
                ).json()
                assert detail["data"] == {"store_id": store.store_id, "customer_id": "c1", "seq": 1}
                assert [(a["attempt"], a["status_code"]) for a in detail["attempts"]] == [
                    (1, 500),
                    (2, 500),
                    (3, 500),
                ]
                receiver.behaviour = lambda _: OK
                replay = await client.post(f"/v1/deliveries/{dead[0]['delivery_id']}/replay", headers=headers)
                assert replay.status_code == 202, replay.text
                assert (replay.json()["status"], replay.json()["attempt_count"]) == ("pending", 0)
                await pump.run_once()
                detail = (
                    await client.get(f"/v1/deliveries/{dead[0]['delivery_id']}", headers=headers)
                ).json()
                assert detail["status"] == "delivered"
                assert detail["attempts"][-1]["series"] == 2
                assert {
                    request.message_id for request in receiver.requests if b'"seq":1' in request.body
                } == {detail["message_id"]}
            finally:
                await pump.aclose()

    async def test_unknown_delivery_and_bad_cursor(self, client: Client, store: StoreCreated) -> None:
        headers = marketer(store)
        assert (await client.get("/v1/deliveries/dlv_999999999", headers=headers)).status_code == 404
        assert (await client.get("/v1/deliveries/nonsense", headers=headers)).status_code == 404
        assert (await client.post("/v1/deliveries/dlv_1/replay", headers=headers)).status_code == 404
        response = await client.get("/v1/deliveries?cursor=%%%", headers=headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "cursor"
        assert (await client.get("/v1/deliveries?status=lost", headers=headers)).status_code in (400, 422)
