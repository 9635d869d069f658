"""Calling the app straight on ASGI, without an HTTP server."""

from __future__ import annotations

from typing import Any


def http_scope(
    method: str, target: str, headers: list[tuple[bytes, bytes]], *, server: str
) -> dict[str, Any]:
    """The ASGI scope of one HTTP/1.1 request for `target` (a path with an optional query)."""
    path, _, query = target.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": (server, 80),
    }
