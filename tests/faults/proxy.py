"""A TCP proxy in front of PostgreSQL or Redis that a test can cut, hang and restore.

The application under test connects to the proxy (loopback TCP) instead of the server (often a unix
socket, as the embedded servers are). `cut()` is the server going away: every connection is closed
and new ones are refused. `hang()` is the server (or the network) going silent: connections stay
open and new ones are accepted, but no byte passes either way. `restore()` brings it back on the
same port, as a restarted server would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit, urlunsplit

from tests.loopback import HOST, LoopbackServer

Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


def upstream_of(url: str) -> Opener:
    """How to reach the server a PostgreSQL or Redis URL names (TCP or unix socket)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return lambda: asyncio.open_unix_connection(parts.path)
    socket_dir = parse_qs(parts.query).get("host", [""])[0]
    if socket_dir.startswith("/"):  # libpq style: the directory of PostgreSQL's socket
        path = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}"
        return lambda: asyncio.open_unix_connection(path)
    host, port = parts.hostname or HOST, parts.port or (6379 if parts.scheme.startswith("redis") else 5432)
    return lambda: asyncio.open_connection(host, port)


def through(url: str, port: int) -> str:
    """The URL, pointed at the proxy on `port` (same credentials, database and options)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        db = parse_qs(parts.query).get("db", ["0"])[0]
        return f"redis://{HOST}:{port}/{db}"
    query = "&".join(
        f"{name}={value}"
        for name, values in parse_qs(parts.query).items()
        if name != "host"
        for value in values
    )
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{HOST}:{port}" if credentials else f"{HOST}:{port}"
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class Proxy(LoopbackServer):
    def __init__(self, upstream: Opener) -> None:
        super().__init__()
        self._upstream = upstream
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def cut(self) -> None:
        """The server is gone: close every connection and refuse new ones."""
        self._flowing.set()
        await self.stop()

    async def hang(self) -> None:
        """The server goes silent: nothing passes, nothing is closed."""
        self._flowing.clear()

    async def restore(self) -> None:
        """The server is back, on the same port."""
        self._flowing.set()
        if not self.running:
            await self.start()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._flowing.wait()
        try:
            server_reader, server_writer = await self._upstream()
        except OSError:
            return  # the server is really down: so is this connection
        try:
            await asyncio.gather(self._pipe(reader, server_writer), self._pipe(server_reader, writer))
        except OSError:
            pass  # either side went away: close both
        finally:
            server_writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()
        # One side closed: close the other, so the peer sees the connection end.
        writer.close()
