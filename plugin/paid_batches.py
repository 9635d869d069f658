"""Paid orders from concurrent deliveries, applied together: group commit for ingestion.

A paid order is the busiest write Patron has: its inbox row, member, order, lines, catalogue, ledger
entry, lot, balance, outbox row and tier pass. Applied one delivery per transaction, every order
pays for a dozen statements, their triggers and a commit of its own. Here deliveries of one store
that arrive while earlier ones are being applied wait in a queue, and the next batch applies up to
`max_batch` of them in one transaction with the same handful of set-based statements
(`inbox.receive_paid`) that a single order uses. Nothing waits for a batch to fill: an idle store's
delivery starts a batch of one at once, and under load batches grow by themselves, because
deliveries queue while a batch runs.

Each delivery still gets its own answer: `applied` or `duplicate`, or the error that would have
failed it alone. A batch holds distinct inbox keys, orders and members: a member's second order is
earned on the state the first one left (first-order bonus, tier, debt), so it waits for the next
batch, and so does any delivery of an order already in the batch. When a batch fails (a deadlock
with a store-wide pass, say, or one delivery PostgreSQL refuses), nothing of it is kept and its
deliveries are applied again one by one, each in its own transaction, so one bad delivery fails only
itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from hooks import inbox
from hooks.inbox import PaidDelivery, Status
from loyalty.repository.stores import StoreRow
from plugin import metrics

log = logging.getLogger(__name__)

MAX_BATCH = 64
"""Deliveries applied in one transaction at most: enough to amortise the statements and the commit,
few enough that a batch's locks are held briefly."""
MAX_CONCURRENT = 2
"""Batches of one store in flight at once: one can commit while the next runs its statements."""
_SCAN = 4 * MAX_BATCH
"""Queued deliveries looked at per batch, at most, when earlier ones must wait for a later batch."""


@dataclass(slots=True)
class _Pending:
    store: StoreRow
    delivery: PaidDelivery
    now: datetime
    answer: asyncio.Future[Status] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class PaidOrderBatches:
    """Queues paid-order deliveries per store and applies them in batches on `pool`'s connections."""

    def __init__(
        self, pool: asyncpg.Pool, *, max_batch: int = MAX_BATCH, max_concurrent: int = MAX_CONCURRENT
    ) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_concurrent = max_concurrent
        self._queues: dict[str, deque[_Pending]] = {}
        self._draining: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def receive(self, *, store: StoreRow, delivery: PaidDelivery, now: datetime) -> Status:
        """Record and apply a paid order with whatever other deliveries are waiting; its status."""
        pending = _Pending(store, delivery, now)
        self._queues.setdefault(store.store_id, deque()).append(pending)
        if self._draining.get(store.store_id, 0) < self._max_concurrent:
            self._draining[store.store_id] = self._draining.get(store.store_id, 0) + 1
            task = asyncio.create_task(self._drain(store.store_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await pending.answer

    async def aclose(self) -> None:
        """Wait for the batches in flight (their deliveries are waiting for the answers)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _drain(self, store_id: str) -> None:
        queue = self._queues[store_id]
        try:
            while queue:
                await self._apply(self._take(queue))
        finally:
            self._draining[store_id] -= 1
            if not self._draining[store_id]:
                del self._draining[store_id]
                if not queue:
                    del self._queues[store_id]

    def _take(self, queue: deque[_Pending]) -> list[_Pending]:
        """The next batch: the oldest deliveries whose key, order and member no earlier one in it has."""
        batch: list[_Pending] = []
        later: list[_Pending] = []
        keys: set[tuple[str, str]] = set()
        orders: set[str] = set()
        customers: set[str] = set()
        scanned = 0
        while queue and len(batch) < self._max_batch and scanned < _SCAN:
            pending = queue.popleft()
            scanned += 1
            delivery = pending.delivery
            key = (delivery.source, delivery.event_id)
            customer = delivery.event.customer.customer_id
            if key in keys or delivery.event.order_id in orders or customer in customers:
                later.append(pending)
                continue
            keys.add(key)
            orders.add(delivery.event.order_id)
            customers.add(customer)
            batch.append(pending)
        queue.extendleft(reversed(later))
        return batch

    async def _apply(self, batch: list[_Pending]) -> None:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                statuses = await inbox.receive_paid(
                    conn,
                    store=batch[0].store,
                    deliveries=[pending.delivery for pending in batch],
                    now=max(pending.now for pending in batch),
                )
        except asyncio.CancelledError:
            for pending in batch:
                pending.answer.cancel()
            raise
        except Exception as exc:
            if len(batch) == 1:
                _answer(batch[0], exc)
                return
            log.info("a batch of %d paid orders failed (%s); applying them one by one", len(batch), exc)
            for pending in batch:
                await self._apply([pending])
            return
        metrics.paid_orders_batched(len(batch))
        for pending, status in zip(batch, statuses, strict=True):
            _answer(pending, status)


def _answer(pending: _Pending, outcome: Status | Exception) -> None:
    if pending.answer.done():  # the request is gone (cancelled); its delivery was applied all the same
        return
    if isinstance(outcome, Exception):
        pending.answer.set_exception(outcome)
    else:
        pending.answer.set_result(outcome)
