"""The package layout's rules, checked by walking imports with `ast` and the app's routes.

`plugin` -> `hooks` -> `loyalty`; `plugin` -> `recommender`. Domain packages never import Litestar;
only repositories (and the few modules that own the pool) import asyncpg; only
`recommender/model.py` imports lightfm; every Patron route is behind a scope guard or says why not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.utils.predicates import is_async_callable

from plugin import PatronConfig, PatronPlugin
from plugin.auth import EXCLUDE_FROM_AUTH, SCOPES, authenticate
from plugin.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("loyalty", "hooks", "recommender", "plugin")


def modules(*packages: str) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module the file imports, anywhere in it (inside functions and TYPE_CHECKING too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def importers(top: str, *packages: str) -> list[str]:
    """Files in `packages` importing `top` or anything under it."""
    return [
        str(path.relative_to(ROOT))
        for path in modules(*packages)
        if any(name == top or name.startswith(top + ".") for name in imported(path))
    ]


def test_the_walker_sees_plain_from_and_nested_imports() -> None:
    assert "asyncpg" in imported(ROOT / "loyalty" / "repository" / "__init__.py")
    assert "loyalty.repository.Connection" in imported(ROOT / "loyalty" / "repository" / "stores.py")
    assert "granian.server" in imported(ROOT / "plugin" / "cli" / "_server.py")  # inside serve()
    assert "plugin/cli/_server.py" in importers("granian", "plugin")


@pytest.mark.parametrize("package", ["loyalty", "hooks", "recommender"])
def test_domain_packages_never_import_litestar(package: str) -> None:
    assert importers("litestar", package) == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("loyalty", "plugin"),
        ("loyalty", "hooks"),
        ("hooks", "plugin"),
        ("recommender", "plugin"),
        ("recommender", "hooks"),
    ],
)
def test_dependencies_point_one_way(package: str, forbidden: str) -> None:
    assert importers(forbidden, package) == []


ASYNCPG_ALLOWED = (
    "plugin/database.py",
    "plugin/migrations/",
    "plugin/runtime.py",
    "plugin/auth.py",
    "plugin/member_tokens.py",
    "plugin/member_versions.py",
    "plugin/paid_batches.py",
)


def test_only_repositories_and_the_pool_owners_import_asyncpg() -> None:
    offenders = [
        path
        for path in importers("asyncpg", *PACKAGES)
        if "/repository/" not in path
        and not path.endswith("/repository.py")
        and not path.startswith(ASYNCPG_ALLOWED)
    ]
    assert offenders == []
    assert "loyalty/repository/__init__.py" in importers("asyncpg", "loyalty")


def test_only_the_model_module_imports_lightfm() -> None:
    assert set(importers("lightfm", *PACKAGES)) <= {"recommender/model.py"}


def patron_routes() -> list[tuple[str, HTTPRouteHandler]]:
    """(path, handler) of every handler Patron defines (not Litestar's automatic OPTIONS ones)."""
    app = Litestar(plugins=[PatronPlugin(PatronConfig(settings=Settings()))])
    return [
        (route.path, handler)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if authenticate in guards_of(handler) and not handler.fn.__module__.startswith("litestar.")
    ]


def guards_of(handler: HTTPRouteHandler) -> list[object]:
    return [guard for layer in handler.ownership_layers for guard in layer.guards or []]


def route_name(path: str, handler: HTTPRouteHandler) -> str:
    return f"{'/'.join(sorted(handler.http_methods))} {path}"


def test_every_patron_route_requires_a_scope_or_says_why_not() -> None:
    routes = patron_routes()
    assert {"GET /v1/me", "POST /v1/admin/stores", "GET /health"} <= {route_name(*r) for r in routes}
    unguarded = [
        route_name(path, handler)
        for path, handler in routes
        if not handler.opt.get(EXCLUDE_FROM_AUTH) and not handler.opt.get(SCOPES)
    ]
    assert unguarded == []


def test_patron_guards_are_async() -> None:
    # Litestar runs a sync guard in a worker thread: a thread hop on every request.
    sync = {
        f"{route_name(path, handler)}: {guard!r}"
        for path, handler in patron_routes()
        for guard in guards_of(handler)
        if not is_async_callable(guard)  # type: ignore[arg-type]
    }
    assert sync == set()
