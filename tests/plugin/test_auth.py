"""Auth guards: how routes are let through, and what that costs per request."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.testing import AsyncTestClient

from loyalty.stores import Principal, Scope
from plugin.app import create_app
from plugin.auth import authenticate, requires
from plugin.settings import Settings


def test_no_guard_runs_in_a_thread() -> None:
    # Litestar runs a plain-function guard through sync_to_thread: a thread hop on every request.
    app = create_app(Settings(database_url="postgresql://unused", redis_url="redis://unused"))
    for route in app.routes:
        for handler in route.route_handlers:  # type: ignore[attr-defined]
            for guard in handler.resolve_guards():
                assert inspect.iscoroutinefunction(guard), f"{route.path}: {guard!r} is not async"


class _Keys:
    """Resolves a token naming a scope to a key of that scope."""

    async def resolve(self, token: str) -> Principal | None:
        return Principal(store_id="st_1", scope=Scope(token), key_id="key_1") if token in set(Scope) else None


@get("/marketing", opt=requires(Scope.marketer, Scope.channel), sync_to_thread=False)
def marketing() -> str:
    return "ok"


class TestRequires:
    @pytest.fixture
    async def client(self) -> AsyncIterator[AsyncTestClient[Litestar]]:
        app = Litestar(
            [marketing], guards=[authenticate], state=State({"patron": SimpleNamespace(keys=_Keys())})
        )
        async with AsyncTestClient(app) as client:
            yield client

    @pytest.mark.parametrize(
        ("token", "status"),
        [("marketer", 200), ("channel", 200), ("app", 403), ("storefront", 403), ("x", 401)],
    )
    async def test_lets_through_the_named_scopes_only(
        self, client: AsyncTestClient[Litestar], token: str, status: int
    ) -> None:
        response = await client.get("/marketing", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status
