"""The asyncpg pool: jsonb goes through msgspec, every connection speaks UTC, and connecting gives up
after a few seconds (a PostgreSQL that does not answer is an outage, answered 503, not a hang)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import msgspec

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection (TCP, TLS and authentication) before giving up."""

UNAVAILABLE = (
    OSError,  # refused, reset, unreachable; TimeoutError (connecting, acquiring) is an OSError too
    asyncpg.PostgresConnectionError,  # the connection failed or was lost mid-operation
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
"""Errors that mean PostgreSQL cannot be reached now, rather than a fault in what was asked of it."""

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        # msgspec encodes to bytes; asyncpg's text codecs want str, so decode once at the edge.
        await conn.set_type_codec(
            kind, encoder=lambda value: _encode(value).decode(), decoder=_decode, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`), a round trip on every release — a tenth of an ingested webhook's. asyncpg still
    rolls back an open transaction and drops listener callbacks. Patron's sessions stay clean
    without it: settings are `SET LOCAL`/`set_config(…, true)`, and the two users of session state
    undo it before release (the change relay unlocks its advisory lock, the delivery pump UNLISTENs).
    """


async def create_pool(url: str, *, size: int) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=size,
        init=_init_connection,
        reset=_keep_session,
        timeout=CONNECT_TIMEOUT,
        server_settings={"timezone": "UTC", "application_name": "patron"},
    )
    return pool


async def connect(url: str, **kwargs: Any) -> asyncpg.Connection:
    """One connection outside the pool (migrations, CLI)."""
    conn: asyncpg.Connection = await asyncpg.connect(url, server_settings={"timezone": "UTC"}, **kwargs)
    await _init_connection(conn)
    return conn


POOL_CLOSE_SECONDS = 10.0
"""How long shutdown waits for pooled connections to come back before closing them regardless."""


async def close_pool(pool: asyncpg.Pool) -> None:
    # asyncpg's close waits for every connection to be released, forever: one leaked by a task that
    # never finished would hold the process (and a test session) up at exit.
    try:
        await asyncio.wait_for(pool.close(), POOL_CLOSE_SECONDS)
    except TimeoutError:
        log.warning("connections still in use after %.0f s; closing them", POOL_CLOSE_SECONDS)
        pool.terminate()
