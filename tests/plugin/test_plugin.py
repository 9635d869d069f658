"""PatronPlugin mounted inside somebody else's Litestar application."""

from __future__ import annotations

import httpx
from litestar import Litestar, get

from plugin import PatronConfig, PatronPlugin
from plugin.settings import Settings
from tests.conftest import ADMIN, bearer


@get("/")
async def home() -> str:
    return "my shop"


async def test_mounted_under_a_prefix_beside_host_routes(settings: Settings) -> None:
    app = Litestar(
        route_handlers=[home], plugins=[PatronPlugin(PatronConfig(settings=settings, path="/loyalty"))]
    )
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            assert (await client.get("/")).text == "my shop"
            assert (await client.get("/loyalty/health")).json()["status"] == "ok"
            created = await client.post("/loyalty/v1/admin/stores", json={"name": "Mounted"}, headers=ADMIN)
            assert created.status_code == 201
            me = await client.get("/loyalty/v1/me", headers=bearer(created.json()["api_keys"]["channel"]))
            assert me.json()["scope"] == "channel"
            # The host's own routes are not behind Patron's auth.
            assert (await client.get("/", headers=bearer("nonsense"))).status_code == 200
