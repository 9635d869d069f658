"""Health, errors as problem+json, request ids, OpenAPI and metrics."""

from __future__ import annotations

import httpx
import pytest

from loyalty.stores import StoreCreated
from tests.conftest import ADMIN, bearer

Client = httpx.AsyncClient


async def test_health_and_ready_report_both_servers(client: Client) -> None:
    for path in ("/health", "/ready"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "postgres": "ok", "redis": "ok"}


async def test_request_id_is_echoed_or_made(client: Client) -> None:
    given = await client.get("/health", headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/health")
    assert len(made.headers["x-request-id"]) == 16


class TestProblems:
    async def test_malformed_json_is_400(self, client: Client) -> None:
        response = await client.post(
            "/v1/admin/stores", content=b'{"name": ', headers=ADMIN | {"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:patron:problem:malformed"

    async def test_invalid_field_is_422_naming_it(self, client: Client) -> None:
        response = await client.post(
            "/v1/admin/stores", json={"name": "x", "currency": "euro"}, headers=ADMIN
        )
        assert response.status_code == 422
        problem = response.json()
        assert problem["type"] == "urn:patron:problem:validation"
        assert [error["field"] for error in problem["errors"]] == ["currency"]
        assert problem["request_id"] == response.headers["x-request-id"]

    async def test_domain_rule_is_422_naming_the_field(self, client: Client) -> None:
        response = await client.post(
            "/v1/admin/stores", json={"name": "x", "timezone": "Mars/Base"}, headers=ADMIN
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "timezone"

    async def test_unknown_route_is_404_problem(self, client: Client) -> None:
        response = await client.get("/v1/nothing-here")
        assert response.status_code == 404
        assert response.json()["type"] == "urn:patron:problem:not-found"

    @pytest.mark.parametrize(
        ("headers", "status", "kind"),
        [
            ({}, 401, "unauthenticated"),
            (bearer("pk_marketer_not-a-real-key"), 401, "unauthenticated"),
            ({"Authorization": "Basic Zm9vOmJhcg=="}, 401, "unauthenticated"),
        ],
    )
    async def test_missing_or_bad_key_is_401(
        self, client: Client, headers: dict[str, str], status: int, kind: str
    ) -> None:
        response = await client.get("/v1/me", headers=headers)
        assert response.status_code == status
        assert response.json()["type"] == f"urn:patron:problem:{kind}"


async def test_openapi_documents_every_route(client: Client, store: StoreCreated) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert {"/health", "/ready", "/v1/admin/stores", "/v1/me"} <= set(schema["paths"])
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"
            assert operation.get("description"), f"{method.upper()} {path} has no description"
    assert "StoreCreate" in schema["components"]["schemas"]


async def test_metrics_have_latency_histograms_per_route(client: Client, store: StoreCreated) -> None:
    await client.get("/v1/me", headers=bearer(store.api_keys["app"]))
    text = (await client.get("/metrics")).text
    assert "patron_request_duration_seconds_bucket{" in text
    assert 'path="/v1/me"' in text
