"""The admin page's files at /admin/: served without a key, with their types and a strict CSP, and
its scripts call only API routes that exist (the browser tests in tests/browser drive the page)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from plugin import PatronConfig, PatronPlugin
from plugin.admin_page import ASSETS
from plugin.settings import Settings

Client = httpx.AsyncClient

TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
SCRIPTS = sorted(ASSETS.glob("*.js"))


def referenced_files() -> set[str]:
    """Every file the page loads: index.html's src/href attributes and the scripts' imports."""
    html = (ASSETS / "index.html").read_text()
    names = set(re.findall(r'(?:src|href)="([\w.-]+\.\w+)"', html))
    for script in SCRIPTS:
        names |= set(re.findall(r'from "\./([\w.-]+)"', script.read_text()))
    return names


async def test_admin_redirects_to_the_page_directory(client: Client) -> None:
    response = await client.get("/admin")
    assert response.status_code == 308
    assert response.headers["location"] == "admin/"
    assert str(response.url.join(response.headers["location"])).endswith("/admin/")


async def test_the_page_is_served_without_a_key_with_a_strict_policy(client: Client) -> None:
    response = await client.get("/admin/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="app.js"></script>' in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_every_file_the_page_loads_is_served_with_its_type(client: Client) -> None:
    names = referenced_files()
    assert {"app.js", "admin.css", "api.js", "program.js", "members.js", "favicon.svg"} <= names
    for name in sorted(names):
        response = await client.get(f"/admin/{name}")
        assert response.status_code == 200, name
        media_type = response.headers["content-type"].split(";")[0]
        assert media_type == TYPES[Path(name).suffix], name
        assert response.headers["cache-control"] == "no-cache"


async def test_an_unchanged_file_answers_304(client: Client) -> None:
    first = await client.get("/admin/app.js")
    again = await client.get("/admin/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")


@pytest.mark.parametrize("name", ["nope.js", "..%2Fadmin_page.py", "%2E%2E", "index.htm"])
async def test_anything_else_is_404(client: Client, name: str) -> None:
    response = await client.get(f"/admin/{name}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


_CALL = re.compile(
    r"""\bapi\(\s*[`"](?P<path>/[^`"]*)[`"](?:\s*,\s*\{[^}]*?\bmethod:\s*"(?P<method>\w+)")?"""
)


def api_calls() -> set[tuple[str, str]]:
    """(method, path) of every `api(...)` call in the page's scripts, `${…}` as `{}`."""
    calls: set[tuple[str, str]] = set()
    for script in SCRIPTS:
        text = script.read_text()
        every = len(re.findall(r"(?<!function )\bapi\(", text))
        found = list(_CALL.finditer(text))
        assert len(found) == every, f"{script.name}: an api() call without a literal path"
        for match in found:
            path = re.sub(r"\$\{[^`]*?\}(?=/|$)", "{}", match["path"])
            calls.add((match["method"] or "GET", path))
    return calls


def test_the_scripts_call_only_routes_that_exist(app: Litestar) -> None:
    routes = {
        (method, re.sub(r"\{[^}]+\}", "{}", route.path))
        for route in app.routes
        for method in getattr(route, "methods", ())
    }
    calls = api_calls()
    assert {
        ("GET", "/v1/me"),
        ("GET", "/v1/program"),
        ("PUT", "/v1/program"),
        ("POST", "/v1/program/preview"),
        ("GET", "/v1/members"),
        ("GET", "/v1/members/{}"),
        ("GET", "/v1/members/{}/ledger"),
        ("GET", "/v1/deliveries"),
        ("POST", "/v1/deliveries/{}/replay"),
        ("GET", "/v1/care/report"),
    } <= calls
    assert calls - routes == set()


async def test_mounted_under_a_path_the_page_and_its_files_are_there_too(settings: Settings) -> None:
    app = Litestar(
        plugins=[PatronPlugin(PatronConfig(settings=settings, path="/loyalty", metrics=False))],
        logging_config=None,
    )
    async with AsyncTestClient(app) as client:
        redirect = await client.get("/loyalty/admin", follow_redirects=False)
        assert (redirect.status_code, redirect.headers["location"]) == (308, "admin/")
        page = await client.get("/loyalty/admin/")
        assert page.status_code == 200
        assert '<script type="module" src="app.js"></script>' in page.text
        assert (await client.get("/loyalty/admin/api.js")).status_code == 200
        # The scripts find the API beside the page's directory: <mount>/admin/../v1/ is <mount>/v1/.
        assert 'new URL("../", import.meta.url)' in (await client.get("/loyalty/admin/api.js")).text
        assert (await client.get("/loyalty/v1/program")).status_code == 401
