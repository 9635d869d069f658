"""A second Patron replica on the same servers, for what has to hold across processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar, Request, Router, get
from litestar.testing import AsyncTestClient

from loyalty.stores import Principal, Scope
from plugin import PatronConfig, PatronPlugin
from plugin.auth import KeyResolver, authenticate, requires
from plugin.errors import EXCEPTION_HANDLERS
from plugin.runtime import Runtime
from plugin.settings import Settings
from tests.conftest import eventually

Client = AsyncTestClient[Litestar]

MARKETERS_ONLY = "/test/marketers-only"


@get(MARKETERS_ONLY, opt=requires(Scope.marketer), summary="Test probe")
async def marketers_only(request: Request[Any, Any, Any]) -> Principal:
    """A route only marketer keys may call."""
    principal: Principal = request.auth
    return principal


@pytest.fixture(scope="session")
async def replica(settings: Settings, client: Client) -> AsyncIterator[Client]:
    """Another Patron process: its own pool and key cache, no operator token, and a marketers-only route.

    Yielded once it follows the key revocation feed, so a revocation published after that reaches it.
    """
    app = Litestar(
        route_handlers=[Router("/", route_handlers=[marketers_only], guards=[authenticate])],
        plugins=[PatronPlugin(PatronConfig(settings=msgspec.structs.replace(settings, admin_token=None)))],
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
    )
    async with AsyncTestClient(app) as replica:
        runtime: Runtime = app.state.patron
        # The replica runs on the test client's loop in another thread: poll, do not await its Event.
        assert await eventually(lambda: following(runtime.keys))
        yield replica


async def following(resolver: KeyResolver) -> bool:
    return resolver.following.is_set()
