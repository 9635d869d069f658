"""The backfill's state between chunks, and what it writes for each."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from loyalty import orders
from loyalty.backfill._decode import BackfillEvent, BadLine, OrderEvent, event_type
from loyalty.errors import InvalidInput
from loyalty.events import Customer, OrderCancelled, OrderLine, OrderPaid, OrderRefunded, ProductUpserted
from loyalty.program import Program
from loyalty.repository import Connection
from loyalty.repository import backfill as repo
from loyalty.repository import backfill_refunds as refunds_repo
from loyalty.repository import products as products_repo
from loyalty.repository.stores import StoreRow

CHUNK_LINES = 50_000
"""Order lines buffered before a chunk is written: bounds memory, keeps COPYs large."""
AWARD_CHUNK_EVENTS = 1_000
"""Events applied one by one (with `award`) between two progress reports."""
ANALYZE_AFTER = frozenset(250 * 4**n for n in range(6))
"""Events applied one by one after which the orders' statistics are refreshed (with `award`)."""


class Summary(msgspec.Struct, kw_only=True):
    """What a backfill did. Counts are of rows written now: a second run of a file counts 0 orders."""

    lines_read: int = 0
    customers: int = 0
    """Distinct customers in the file (from customer events and orders)."""
    members_created: int = 0
    products: int = 0
    """Distinct products in the file (from product events and order lines)."""
    orders: int = 0
    orders_known: int = 0
    """order.paid events for orders already loaded (by an earlier run, a webhook, or the file)."""
    order_lines: int = 0
    refunds: int = 0
    cancellations: int = 0
    parked: int = 0
    """Refunds and cancellations whose order is not known yet; applied when it arrives."""
    seconds: float = 0.0


_NewOrder = tuple[repo.OrderRecord, repo.MemberRecord, list[OrderLine]]


@dataclass
class _Batch:
    """One chunk of the file, ready to write."""

    customers: list[repo.CustomerRecord] = field(default_factory=list)
    products: list[repo.ProductRecord] = field(default_factory=list)
    orders: dict[str, _NewOrder] = field(default_factory=dict)
    """Set-based: the first order.paid of each order id, with its lines."""
    events: list[tuple[int, OrderEvent]] = field(default_factory=list)
    """With `award`: order events to apply one by one, in line order."""
    lines: int = 0


@dataclass
class Loader:
    conn: Connection
    store: StoreRow
    program: Program
    now: datetime
    award: bool
    skip_key_check: bool
    chunk_lines: int = CHUNK_LINES
    summary: Summary = field(default_factory=Summary)
    batch: _Batch = field(default_factory=_Batch)
    later: list[tuple[int, OrderRefunded | OrderCancelled]] = field(default_factory=list)
    """Set-based: refunds and cancellations, applied once every order is in."""
    customer_ids: set[str] = field(default_factory=set)
    members_written: set[str] = field(default_factory=set)
    """Customers whose member row this load has upserted or ensured: they exist from then on."""
    product_ids: set[str] = field(default_factory=set)
    line_products: list[tuple[str, str | None, str | None, int]] = field(default_factory=list)
    """Products first named by an order line: the catalogue keeps what the line says."""
    pending: asyncio.Future[None] | None = None
    uncategorised: bool = False
    """Whether some line named no category (then it takes the catalogue's)."""
    applied: int = 0

    @property
    def store_id(self) -> str:
        return self.store.store_id

    @property
    def full(self) -> bool:
        return self.batch.lines >= self.chunk_lines or len(self.batch.events) >= AWARD_CHUNK_EVENTS

    @property
    def writing(self) -> bool:
        return self.pending is not None and not self.pending.done()

    def add(self, line_no: int, event: BackfillEvent) -> None:
        """Buffer one event of the file."""
        batch = self.batch
        if isinstance(event, Customer):
            self._add_customer(line_no, event)
        elif isinstance(event, ProductUpserted):
            e = event
            facts = (e.title, e.category, e.brand, e.price, list(e.tags), e.consumable_days, e.active)
            batch.products.append((line_no, e.product_id, *facts, e.updated_at))
            self.product_ids.add(e.product_id)
        elif isinstance(event, OrderPaid):
            self._add_order(line_no, event)
        elif self.award:
            batch.events.append((line_no, event))
        else:
            self.later.append((line_no, event))

    def _add_customer(self, line_no: int, c: Customer) -> None:
        self.customer_ids.add(c.customer_id)
        profile = (c.email, c.first_name, c.last_name, c.birthday, c.marketing_consent, c.updated_at)
        self.batch.customers.append((line_no, c.customer_id, *profile))

    def _add_order(self, line_no: int, event: OrderPaid) -> None:
        c = event.customer
        self.customer_ids.add(c.customer_id)
        if c.updated_at is not None:
            self._add_customer(line_no, c)  # a timed snapshot, as the per-event path applies it
        self._note_products(event.lines)
        self.batch.lines += len(event.lines)
        if self.award:
            self.batch.events.append((line_no, event))
        elif event.order_id in self.batch.orders:
            self.summary.orders_known += 1
        else:
            order = (
                event.order_id,
                c.customer_id,
                event.currency,
                event.subtotal,
                event.total,
                event.placed_at,
            )
            member = (c.customer_id, c.email, c.first_name, c.last_name, c.birthday, c.marketing_consent)
            self.batch.orders[event.order_id] = (order, member, event.lines)

    def _note_products(self, lines: list[OrderLine]) -> None:
        """Products first named by these lines (the catalogue keeps what the first line says), and
        whether a line names no category. Most lines name products seen before: one set test each."""
        if not self.uncategorised:
            self.uncategorised = any(line.category is None for line in lines)
        named = {line.product_id for line in lines}
        named.discard(None)
        if named <= self.product_ids:
            return
        for line in lines:
            if line.product_id is not None and line.product_id not in self.product_ids:
                self.product_ids.add(line.product_id)
                self.line_products.append((line.product_id, line.title, line.category, line.unit_price))

    async def flush(self) -> None:
        """Write the buffered chunk. Set-based, the write goes on while the next chunk is read:
        PostgreSQL maintains indexes on one core while Python decodes on another."""
        batch, self.batch = self.batch, _Batch()
        await self.drain()
        if self.award:
            await self._write(batch)
        else:
            self.pending = asyncio.ensure_future(self._write(batch))

    async def drain(self) -> None:
        """Wait for the chunk being written; its error is raised here."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            await pending

    async def abandon(self) -> None:
        """Let the chunk being written finish before the caller rolls back: the connection
        cannot roll back in the middle of a COPY. Its own error matters less than the caller's."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            with contextlib.suppress(Exception):
                await pending

    async def _write(self, batch: _Batch) -> None:
        conn, store_id = self.conn, self.store_id
        lowest = self.program.tiers.levels[0].code
        if batch.customers:
            await repo.upsert_customers(
                conn, store_id=store_id, records=batch.customers, tier_code=lowest, now=self.now
            )
            self.members_written.update(record[1] for record in batch.customers)
        if batch.products:
            await repo.upsert_products(conn, store_id=store_id, records=batch.products)
        if batch.orders:
            await self._insert_orders(batch.orders)
        if batch.events:
            await self._apply_events(batch.events)

    async def _insert_orders(self, new_orders: dict[str, _NewOrder]) -> None:
        conn, store_id = self.conn, self.store_id
        written = self.members_written
        members = {m[0]: m for _, m, _ in reversed(new_orders.values()) if m[0] not in written}
        if members:
            await repo.ensure_members(
                conn,
                store_id=store_id,
                customers=list(members.values()),
                tier_code=self.program.tiers.levels[0].code,
                now=self.now,
            )
            written.update(members)
        new = await repo.insert_orders(
            conn,
            store_id=store_id,
            records=[order for order, _, _ in new_orders.values()],
            program_version=self.program.version,
        )
        self.summary.orders += len(new)
        self.summary.orders_known += len(new_orders) - len(new)
        # Sorted by the primary key, so order_lines' index grows at its right edge. The records are
        # made as the COPY sends them: short-lived, they cost the garbage collector nothing.
        order_ids = sorted(new)
        records = (
            (ln.line_id, ln.product_id, ln.sku, ln.title, ln.category, ln.quantity, ln.unit_price,
             ln.discount, store_id, order_id)
            for order_id in order_ids
            for ln in new_orders[order_id][2]
        )  # fmt: skip
        await repo.copy_lines(conn, records=records, skip_key_check=self.skip_key_check)
        self.summary.order_lines += sum(len(new_orders[order_id][2]) for order_id in order_ids)

    async def _apply_events(self, events: list[tuple[int, OrderEvent]]) -> None:
        """The per-event path, in line order (with `award`, and for orders that earned points)."""
        for line_no, event in events:
            self.applied += 1
            if self.applied in ANALYZE_AFTER:
                # Fresh tables (a new install, the demo) have no statistics: cached plans (the
                # order_lines foreign-key check, the catalogue lookup) would scan them as they grow.
                await repo.analyze_orders(self.conn)
            if not isinstance(event, OrderPaid) and await self._parked_before(event):
                self.summary.parked += 1
                continue
            try:
                outcome = await self._apply(event)
            except InvalidInput as exc:
                raise BadLine(line_no, exc.detail) from None
            self._count(event, outcome)

    async def _apply(self, event: OrderEvent) -> str:
        conn, store, program, now = self.conn, self.store, self.program, self.now
        if isinstance(event, OrderPaid):
            (outcome,) = await orders.apply_paid(conn, store=store, program=program, events=[event], now=now)
            return outcome
        if isinstance(event, OrderRefunded):
            return await orders.apply_refunded(conn, store=store, program=program, event=event, now=now)
        return await orders.apply_cancelled(conn, store=store, program=program, event=event, now=now)

    async def _parked_before(self, event: OrderRefunded | OrderCancelled) -> bool:
        """An event an earlier run parked: parking it again would apply it twice."""
        payload = msgspec.json.encode(event).decode()
        return await refunds_repo.is_parked(
            self.conn,
            store_id=self.store_id,
            order_id=event.order_id,
            event_type=event_type(event),
            payload=payload,
        )

    def _count(self, event: OrderEvent, outcome: str) -> None:
        if outcome == "parked":
            self.summary.parked += 1
        elif isinstance(event, OrderPaid):
            if outcome == "applied":
                self.summary.orders += 1
                self.summary.order_lines += len(event.lines)
            else:
                self.summary.orders_known += 1
        elif outcome == "applied":
            if isinstance(event, OrderRefunded):
                self.summary.refunds += 1
            else:
                self.summary.cancellations += 1

    async def finish(self) -> None:
        """After the last chunk: catalogue from lines, order counts, refunds and cancellations."""
        await self.drain()
        if self.award:
            return  # the per-event path did all of it
        conn, store_id = self.conn, self.store_id
        if self.line_products:
            columns = zip(*self.line_products, strict=True)
            ids, titles, categories, prices = (list(column) for column in columns)
            await products_repo.add_from_lines(
                conn, store_id=store_id, product_ids=ids, titles=titles, categories=categories, prices=prices
            )
        await repo.count_new_orders(conn, store_id=store_id)
        if self.uncategorised:
            await repo.fill_categories(conn, store_id=store_id)
        await self._refunds_and_cancels()

    async def _refunds_and_cancels(self) -> None:
        conn, store_id = self.conn, self.store_id
        await refunds_repo.take_parked(conn, store_id=store_id)
        states = await refunds_repo.order_states(
            conn, store_id=store_id, order_ids=sorted({event.order_id for _, event in self.later})
        )
        refunds: list[refunds_repo.RefundRecord] = []
        refund_lines: list[refunds_repo.RefundLineRecord] = []
        cancels: list[refunds_repo.CancelRecord] = []
        to_park: dict[tuple[str, str, str], None] = {}
        per_event: list[tuple[int, OrderEvent]] = []
        for line_no, event in self.later:
            awarded = states.get(event.order_id)
            if awarded is None:
                to_park[event.order_id, event_type(event), msgspec.json.encode(event).decode()] = None
            elif awarded:
                # An order that earned points (by a webhook): reversing them is the per-event path's job.
                per_event.append((line_no, event))
            elif isinstance(event, OrderRefunded):
                refunds.append((line_no, line_no, event.order_id, event.refund_id, event.amount))
                refund_lines.extend((line_no, event.order_id, ln.line_id, ln.quantity) for ln in event.lines)
            else:
                cancels.append((line_no, line_no, event.order_id))
        await refunds_repo.park(conn, store_id=store_id, events=list(to_park))
        self.summary.parked += len(to_park)
        await refunds_repo.stage_refunds(conn, refunds=refunds, refund_lines=refund_lines, cancels=cancels)
        recorded, problems = await refunds_repo.apply_refunds(conn, store_id=store_id)
        if problems:
            where, order_id, line_ids = problems[0]
            raise BadLine(where, f"order {order_id} has no lines {line_ids}")
        self.summary.refunds += recorded
        self.summary.cancellations += await refunds_repo.apply_cancels(conn, store_id=store_id)
        await self._apply_events(per_event)
