"""Helpers for the consistent-service tests: keys by scope, member tokens, the profile."""

from __future__ import annotations

from typing import Any

import httpx

from loyalty.stores import StoreCreated
from tests.conftest import bearer


def key(store: StoreCreated, scope: str) -> dict[str, str]:
    return bearer(store.api_keys[scope])


async def member_token(client: httpx.AsyncClient, store: StoreCreated, cid: str) -> dict[str, str]:
    response = await client.post(f"/v1/members/{cid}/tokens", headers=key(store, "channel"))
    assert response.status_code == 201, response.text
    return bearer(response.json()["token"])


async def profile(client: httpx.AsyncClient, cid: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(f"/v1/members/{cid}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
