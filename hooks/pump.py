"""The delivery pump: a loop in each worker that fans the outbox out and sends due deliveries.

Why a dedicated loop rather than the job queue: a job per delivery would double the bookkeeping
(a job row beside each delivery row, each with its own lease and retries) and the job queue's
one-second poll would be the floor of the outbox lag. The pump claims deliveries directly (`FOR
UPDATE SKIP LOCKED` under a lease, see hooks/repository/deliveries.py) and sleeps on LISTEN:
a trigger notifies `patron_outbox` when an outbox row commits, fan-out notifies
`patron_deliveries`, and each finished attempt wakes its own pump, so a member's next message goes
out as soon as the previous one is acknowledged. A poll every `poll_seconds` covers retries
coming due and notifications lost with a dropped connection.

Bounded: at most `concurrency` attempts in flight per pump and `per_endpoint` per endpoint, each
attempt cut off at `timeout`, so a slow receiver holds a few slots of its own and never the rest.
A pump killed mid-delivery leaves leases that lapse after `lease_seconds`; another pump then claims
and sends again (at least once). On a clean stop, in-flight attempts get `grace_seconds` and
the rest are released untried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from hooks import delivery, outbox
from hooks.repository import Pool, PooledConnection
from hooks.repository import deliveries as repo
from hooks.repository.deliveries import Claimed

log = logging.getLogger(__name__)

OUTBOX_CHANNEL = "patron_outbox"
"""Notified by a trigger on outbox inserts (migration 0008), when their transaction commits."""


class DeliveryPump:
    """Fans out the outbox and delivers due deliveries, until stopped.

    `clock`: None uses the database's clock (shared by all workers); tests pass one they can move.
    `observe`: told of every recorded attempt and what followed it (the metrics count them).
    """

    def __init__(
        self,
        pool: Pool,
        *,
        retry_schedule: Sequence[int],
        allow_private: bool = False,
        clock: Callable[[], datetime] | None = None,
        concurrency: int = 32,
        per_endpoint: int = 8,
        timeout: float = 10.0,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        grace_seconds: float = 10.0,
        name: str | None = None,
        observe: Callable[[delivery.Settled], None] | None = None,
    ) -> None:
        # The lease must outlast an attempt, or a slow but live attempt would be sent twice at once.
        assert lease_seconds > timeout, "lease_seconds must exceed the attempt timeout"
        self.pool = pool
        self.retry_schedule = tuple(retry_schedule)
        self.clock = clock
        self.concurrency = concurrency
        self.per_endpoint = per_endpoint
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        self.observe = observe
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:pump:{id(self):x}"
        self.sender = delivery.Sender(
            allow_private=allow_private, timeout=timeout, max_connections=concurrency
        )
        self._running: dict[int, asyncio.Task[None]] = {}
        self._busy: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._outbox_dirty = True
        self._claim_now = True
        self._listener: PooledConnection | None = None
        # Woken by one finished attempt while busy, wait for a few more: one claim query then
        # fills several slots instead of one.
        self._min_batch = max(1, concurrency // 4)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then finish or release what is in flight."""
        log.info("delivery pump %s started", self.name)
        try:
            await self._listen()
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self._tick()
                except Exception:
                    log.exception("delivery pump %s could not reach the database", self.name)
                waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
                done, pending = await asyncio.wait(
                    waiters, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in pending:
                    waiter.cancel()
                if not done:
                    # Nothing woke us: look at the outbox anyway, in case a notification was lost.
                    self._outbox_dirty = True
                    self._claim_now = True
                    await self._listen()
        finally:
            await self._drain()
            await self._unlisten()
            await self.sender.aclose()
            log.info("delivery pump %s stopped", self.name)

    async def run_once(self) -> int:
        """Fan out, claim what is due now and wait for those attempts; for tests and one-shot use."""
        self._outbox_dirty = self._claim_now = True
        claimed = await self._tick()
        await self.wait_idle()
        return claimed

    async def wait_idle(self) -> None:
        """Wait for the attempts in flight."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def aclose(self) -> None:
        """Close the HTTP connections (run() does this itself)."""
        await self.sender.aclose()

    def _now(self) -> datetime | None:
        return None if self.clock is None else self.clock()

    async def _tick(self) -> int:
        if self._outbox_dirty:
            self._outbox_dirty = False
            self._claim_now = True
            await outbox.fan_out(self.pool, now=self._now())
        free = self.concurrency - len(self._running)
        if not self._claim_now and self._running and free < self._min_batch:
            return 0
        self._claim_now = False
        return await self._claim()

    async def _claim(self) -> int:
        free = self.concurrency - len(self._running)
        if free <= 0:
            return 0
        async with self.pool.acquire() as conn:
            claimed = await repo.claim(
                conn,
                worker=self.name,
                now=self._now(),
                limit=free,
                per_endpoint=self.per_endpoint,
                busy={endpoint: n for endpoint, n in self._busy.items() if n > 0},
                lease_seconds=self.lease_seconds,
            )
        for item in claimed:
            self._busy[item.endpoint_id] += 1
            task = asyncio.create_task(self._deliver(item), name=f"delivery-{item.delivery_id}")
            self._running[item.delivery_id] = task
        return len(claimed)

    async def _deliver(self, claimed: Claimed) -> None:
        try:
            settled = await delivery.deliver(
                self.pool,
                self.sender,
                claimed,
                worker=self.name,
                schedule=self.retry_schedule,
                now=self._now(),
            )
            if self.observe is not None:
                self.observe(settled)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The attempt may or may not have gone out; the lease lapses and it is tried again.
            log.exception("delivery %s: could not record its attempt", claimed.delivery_id)
        finally:
            self._running.pop(claimed.delivery_id, None)
            self._busy[claimed.endpoint_id] -= 1
            if self._busy[claimed.endpoint_id] <= 0:
                del self._busy[claimed.endpoint_id]
            self._wake.set()

    async def _listen(self) -> None:
        """LISTEN on a connection held for the pump's life, again if it was lost (the database
        restarted); without one the pump polls."""
        if self._listener is not None:
            try:
                if not self._listener.is_closed():
                    return
            except Exception:  # noqa: S110 - asyncpg detaches a lost connection from its proxy
                pass
        await self._unlisten()
        try:
            conn = await self.pool.acquire()
        except Exception:
            log.warning("delivery pump %s cannot LISTEN; polling", self.name, exc_info=True)
            return
        try:
            await conn.add_listener(OUTBOX_CHANNEL, self._on_outbox)
            await conn.add_listener(outbox.DELIVERIES_CHANNEL, self._on_deliveries)
        except Exception:
            log.warning("delivery pump %s cannot LISTEN; polling", self.name, exc_info=True)
            await self.pool.release(conn)
            return
        self._listener = conn
        # Notifications sent while nobody listened are gone: look now.
        self._outbox_dirty = self._claim_now = True

    async def _unlisten(self) -> None:
        conn, self._listener = self._listener, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            await conn.remove_listener(OUTBOX_CHANNEL, self._on_outbox)
            await conn.remove_listener(outbox.DELIVERIES_CHANNEL, self._on_deliveries)
        with contextlib.suppress(Exception):
            await self.pool.release(conn)

    def _on_outbox(self, *_: Any) -> None:
        self._outbox_dirty = True
        self._wake.set()

    def _on_deliveries(self, *_: Any) -> None:
        self._claim_now = True
        self._wake.set()

    async def _drain(self) -> None:
        if not self._running:
            return
        tasks = dict(self._running)
        _, pending = await asyncio.wait(tasks.values(), timeout=self.grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        unfinished = [delivery_id for delivery_id, task in tasks.items() if task in pending]
        if unfinished:
            with contextlib.suppress(Exception):
                async with self.pool.acquire() as conn:
                    await repo.release(conn, delivery_ids=unfinished, worker=self.name)
            log.info("delivery pump %s released %d unfinished deliveries", self.name, len(unfinished))
