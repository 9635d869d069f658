"""Who the caller's key acts for."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from loyalty.stores import Principal, Scope
from plugin.auth import requires


@get("/v1/me", opt=requires(*Scope, app_key=True), tags=["auth"], summary="The calling key")
async def me(principal: NamedDependency[Principal]) -> Principal:
    """The store, scope and key id of the calling API key (or member token: with its member)."""
    return principal
