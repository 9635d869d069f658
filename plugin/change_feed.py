"""Following a member's changes across replicas: PostgreSQL → one relay → Redis pub/sub → SSE.

The member triggers `pg_notify` at commit (never for a rolled-back change). One relay per
deployment — whichever process holds an advisory lock on its listening connection; the others
wait to take over — publishes each notification to the member's Redis channel. Every API replica's
SSE handlers subscribe there. A message is only a poke: the handler then reads the member's
`member_changes` rows after the last version it sent, so a lost or duplicated poke (a relay
failing over, Redis reconnecting) loses or repeats nothing; the keep-alive re-check covers a poke
that never came. Without Redis, followers poll PostgreSQL every `POLL_SECONDS` instead (and try to
subscribe again every `RESUBSCRIBE_SECONDS`): changes arrive a little later, none is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from loyalty import privacy
from loyalty.privacy import Change
from plugin.redis_link import UNAVAILABLE
from plugin.runtime import Runtime

log = logging.getLogger(__name__)

PG_CHANNEL = "patron_member_changes"
RELAY_LOCK_ID = 0x7061_7472_6F6E_0010  # "patron" + migration number: one relay per database
KEEPALIVE_SECONDS = 15.0
POLL_SECONDS = 1.0
RESUBSCRIBE_SECONDS = 10.0


def redis_channel(store_id: str, customer_id: str) -> str:
    return f"patron:member-changes:{store_id}:{customer_id}"


async def relay(runtime: Runtime, *, retry_seconds: float = 2.0) -> None:
    """Relay committed member changes from PostgreSQL to Redis while this process holds the relay
    lock; until cancelled. Waits (retrying) while another process relays.

    Holds one pooled connection while relaying; a cancelled relay unlistens and unlocks before
    releasing it, so it hands over at once. If that connection is lost (PostgreSQL restarted), so is
    the lock: the relay starts over, and whichever process takes the lock relays.
    """
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def on_notify(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        queue.put_nowait(str(payload))

    def on_lost(_conn: object) -> None:
        queue.put_nowait(None)

    while True:
        try:
            async with runtime.pool.acquire() as conn:
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_ID):
                    conn.add_termination_listener(on_lost)
                    await conn.add_listener(PG_CHANNEL, on_notify)
                    try:
                        while (pokes := await _waiting(queue)) is not None:
                            # What arrived while the last ones were published goes in one round trip.
                            async with runtime.redis.pipeline(transaction=False) as pipe:
                                for poke in pokes:
                                    store_id, customer_id, version = poke.split("\t")
                                    pipe.publish(redis_channel(store_id, customer_id), version)
                                await pipe.execute()
                            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                                # redis-py can swallow a cancellation that arrives mid-command.
                                raise asyncio.CancelledError
                        log.warning("member change relay lost its connection; starting over")
                    finally:
                        # Pooled connections are released without a reset (plugin/database.py). On a
                        # lost connection these fail: the pool has let go of it already.
                        with contextlib.suppress(Exception):
                            await conn.remove_listener(PG_CHANNEL, on_notify)
                            conn.remove_termination_listener(on_lost)
                        with contextlib.suppress(Exception):
                            await conn.execute("SELECT pg_advisory_unlock($1)", RELAY_LOCK_ID)
            # Another process relays: check again later, without holding a connection meanwhile.
            await asyncio.sleep(retry_seconds)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("member change relay failed; retrying", exc_info=True)
            await asyncio.sleep(retry_seconds)


async def _waiting(queue: asyncio.Queue[str | None]) -> list[str] | None:
    """The notifications queued (at least one, waiting for it); None when the connection was lost."""
    pokes = [await queue.get()]
    while not queue.empty():
        pokes.append(queue.get_nowait())
    if None in pokes:
        return None
    return [poke for poke in pokes if poke is not None]


async def _changes(runtime: Runtime, store_id: str, customer_id: str, since: int) -> list[Change]:
    async with runtime.pool.acquire() as conn:
        page = await privacy.changes_since(
            conn, store_id=store_id, customer_id=customer_id, since=since, limit=500
        )
    return page.items


async def follow(
    runtime: Runtime, *, store_id: str, customer_id: str, since: int, keepalive: float = KEEPALIVE_SECONDS
) -> AsyncIterator[Change | None]:
    """The member's changes after version `since`, as they commit, forever; None as a keep-alive
    when nothing changed for `keepalive` seconds. Subscribes before catching up, so nothing
    committed in between is missed; polls PostgreSQL while Redis is unavailable."""
    loop = asyncio.get_running_loop()
    last = since
    while True:
        try:
            async with runtime.redis.pubsub() as pubsub:
                await pubsub.subscribe(redis_channel(store_id, customer_id))
                while True:
                    for change in await _changes(runtime, store_id, customer_id, last):
                        last = change.version
                        yield change
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=keepalive)
                    if message is None:
                        yield None
        except UNAVAILABLE as exc:
            log.warning("member change feed: Redis unavailable (%s); polling PostgreSQL", exc)
        resubscribe_at = loop.time() + RESUBSCRIBE_SECONDS
        quiet_since = loop.time()
        while loop.time() < resubscribe_at:
            for change in await _changes(runtime, store_id, customer_id, last):
                last = change.version
                quiet_since = loop.time()
                yield change
            if loop.time() - quiet_since >= keepalive:
                quiet_since = loop.time()
                yield None
            await asyncio.sleep(POLL_SECONDS)
