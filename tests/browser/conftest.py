"""A real Patron (granian on a loopback port, its worker on) and headless Chromium driven by Playwright.

Playwright is imported inside the fixtures: it is the `browser` extra, and the default run only
collects these tests (the `browser` marker deselects them), so it must not need it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import pytest

from loyalty.stores import StoreCreated
from plugin.settings import Settings
from tests.bench.servers import running_server, server_env
from tests.conftest import ADMIN, ADMIN_TOKEN
from tests.events import make_customer, make_line, make_order, send

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = os.environ.get("PATRON_TEST_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 1000}


@pytest.fixture(scope="session")
async def patron_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A Patron server process on the test run's database, with its worker (for deliveries) and
    one quick retry, so a failing webhook endpoint has dead letters within seconds."""
    assert settings.database_url is not None
    assert settings.redis_url is not None
    env = server_env(
        {"database": settings.database_url, "redis": settings.redis_url}, admin_token=ADMIN_TOKEN
    )
    env |= {
        "PATRON_WORKER": "true",
        "PATRON_DELIVERY_RETRY_SCHEDULE": "0",
        "PATRON_ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
    }
    async with running_server(
        "granian", "patron", env=env, log_dir=tmp_path_factory.mktemp("server")
    ) as server:
        yield f"http://{server.host}:{server.port}"


@pytest.fixture
async def api(patron_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=patron_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system's Chromium: Playwright drives it and downloads no browser of its own."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's (apt-get install chromium) "
            "or set PATRON_TEST_CHROMIUM to a Chromium binary"
        )
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh tab (its own session storage). An uncaught script error fails the test."""
    context = await browser.new_context(viewport=VIEWPORT, locale="en-GB")
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    await context.close()
    assert errors == []


@dataclass
class Shop:
    """A store with three members: below silver, just below silver, and gold."""

    store: StoreCreated
    url: str

    @property
    def marketer_key(self) -> str:
        return self.store.api_keys["marketer"]

    @property
    def marketer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.marketer_key}"}


MEMBERS = {"anna": ("Anna", 30_000), "ben": ("Ben", 45_000), "cleo": ("Cleo", 160_000)}
"""Customer id: (first name, spend in minor units), paid in one order each."""


async def paid_order(
    api: httpx.AsyncClient,
    store: StoreCreated,
    customer: dict[str, Any],
    amount: int,
    *,
    placed_at: str | None = None,
) -> None:
    """One paid order of `amount` minor units (yesterday unless `placed_at` says when)."""
    when = placed_at or (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    order = make_order(customer=customer, lines=[make_line(unit_price=amount)], placed_at=when)
    response = await send(api, store, "order.paid", order)
    assert response.json() == {"status": "applied"}, response.text


@pytest.fixture
async def shop(api: httpx.AsyncClient, patron_url: str) -> Shop:
    response = await api.post(
        "/v1/admin/stores",
        json={"name": "Browser shop", "currency": "EUR", "timezone": "Europe/Berlin"},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    store = msgspec.convert(response.json(), StoreCreated)
    for cid, (name, spend) in MEMBERS.items():
        customer = make_customer(
            customer_id=cid, first_name=name, last_name="Example", email=f"{cid}@example.com"
        )
        await paid_order(api, store, customer, spend)
    return Shop(store=store, url=f"{patron_url}/admin/")


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: PATRON_TEST_SCREENSHOTS (`make screenshots` keeps them in docs/admin/),
    else a temporary directory."""
    kept = os.environ.get("PATRON_TEST_SCREENSHOTS")
    if kept:
        directory = Path(kept)
        directory.mkdir(parents=True, exist_ok=True)
        return directory
    return tmp_path_factory.mktemp("screenshots")


async def screenshot(page: Page, directory: Path, name: str, *, height: int = 1000) -> None:
    """A full-page PNG, the viewport `height` tall so sticky parts show whole."""
    await page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
    path = directory / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 10_000
    await page.set_viewport_size(VIEWPORT)
