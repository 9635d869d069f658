"""Auth guards: how routes are let through, and what that costs per request."""

from __future__ import annotations

import inspect

from plugin.app import create_app
from plugin.settings import Settings


def test_no_guard_runs_in_a_thread() -> None:
    # Litestar runs a plain-function guard through sync_to_thread: a thread hop on every request.
    app = create_app(Settings(database_url="postgresql://unused", redis_url="redis://unused"))
    for route in app.routes:
        for handler in route.route_handlers:  # type: ignore[attr-defined]
            for guard in handler.resolve_guards():
                assert inspect.iscoroutinefunction(guard), f"{route.path}: {guard!r} is not async"
