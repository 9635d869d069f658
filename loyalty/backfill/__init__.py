"""Backfill: load a store's history from canonical events as JSON lines, set-based.

One line is `{"type": ..., "data": ...}` as the standard webhook body (`customer.upserted`,
`product.upserted`, `order.paid`, `order.refunded`, `order.cancelled`). The whole load runs in the
caller's transaction: a line that cannot be decoded or breaks a rule raises BadLine with its line
number, and since nothing commits, nothing is written (it is a one-shot admin load: fix the line
and run it again). Running the same file again changes nothing: orders, refunds and cancellations
are keyed as on the per-event path.

Without `award` it is set-based. Lines are read in chunks of about 50,000 order lines; each
chunk's customer and product snapshots are staged (COPY into temporary tables) and upserted with
one statement each, its new orders inserted with one statement, and their lines COPYed straight
into `order_lines` — only lines of orders this transaction has just inserted, so they cannot
conflict and the largest table needs no staging copy. Where the database role may set
`session_replication_role` (a superuser, or PG 15+ `GRANT SET ON PARAMETER`) and nothing but that
foreign key fires on `order_lines`, the COPY skips the per-line foreign-key check, which is
redundant for rows whose orders this transaction has just inserted (more than half of the time
otherwise). A chunk is written while the next one is decoded (the decoding yields to the write
every few lines, so PostgreSQL is not kept waiting for its next statement); members this load has
written already are not ensured again. Refunds and cancellations are
staged and applied at the end, once every order is in; those of orders that earned points by
webhooks go through the per-event path. No ledger entries are written: orders are
`awarded = false` with 0 points.

With `award`, customers and products still load set-based per chunk, but orders, refunds and
cancellations go through the per-event path (loyalty/orders.py) one by one, in line order: points
then depend on the member's tier and history exactly as if the events had arrived as webhooks
(with the clock at `now`), and outbox events are written as they would be. That is one to two
orders of magnitude slower; it is meant for onboarding a store whose members should start with
their balances.

Where it differs from sending the same events as webhooks, set-based: within a chunk, customer
and product snapshots apply before the chunk's orders; a line without a category takes the
catalogue's category as it stands at the end of the load. Either way, the members' tiers are
re-evaluated against the live program at the end (`programs.reevaluate_store`, reason `backfill`).

Where the time goes (1,000,000 order lines, tests/bench/RESULTS.md): PostgreSQL's COPY into
`order_lines` (table and primary key) is about two thirds of the server's time; decoding and
checking the JSON about half of the client's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from loyalty import programs
from loyalty.backfill._decode import BackfillEvent, BadLine, decode_line, shifted
from loyalty.backfill._loader import Loader, Summary
from loyalty.repository import Connection
from loyalty.repository import backfill as repo
from loyalty.repository.stores import StoreRow

__all__ = ["SKIP_KEY_CHECK", "BackfillEvent", "BadLine", "Progress", "Summary", "decode_line", "load"]

SKIP_KEY_CHECK = True
"""Load lines without their per-row foreign-key check where that is allowed and safe (see
`copy_lines` in loyalty/repository/backfill.py); the benchmark turns it off to compare."""

YIELD_LINES = 16
"""Lines decoded between two turns of the chunk being written: each of its statements waits for
the next turn, so a long stretch of decoding leaves PostgreSQL idle (16 lines: about 1 ms)."""

Progress = Callable[[int, int], None]
"""Called with (lines read, order lines loaded) after each chunk."""


async def load(
    conn: Connection,
    *,
    store: StoreRow,
    lines: Iterable[bytes],
    now: datetime,
    award: bool = False,
    progress: Progress | None = None,
    shift: timedelta | None = None,
    chunk_lines: int | None = None,
) -> Summary:
    """Load the events of `lines` (JSON lines, numbered from 1) into `store`, in the caller's
    transaction. Raises BadLine for the first line that cannot be loaded; roll back then.
    `shift` moves every time in the file by that much."""
    if not conn.is_in_transaction():
        raise RuntimeError("a backfill runs inside the caller's transaction")
    started = time.perf_counter()
    program = await programs.live_program(conn, store_id=store.store_id)
    skip = SKIP_KEY_CHECK and not award and await repo.can_skip_line_checks(conn)
    loader = Loader(conn, store, program, now, award, skip)
    if chunk_lines is not None:
        loader.chunk_lines = chunk_lines
    summary = loader.summary
    members_before = await repo.count_members(conn, store_id=store.store_id)
    await repo.create_staging(conn)
    try:
        for line_no, raw in enumerate(lines, start=1):
            summary.lines_read = line_no
            if line_no % YIELD_LINES == 0 and loader.writing:
                await asyncio.sleep(0)  # let the chunk being written send its rows
            if not raw.strip():
                continue
            event = decode_line(raw, line_no)
            loader.add(line_no, event if shift is None else shifted(event, shift))
            if loader.full:
                await loader.flush()
                if progress is not None:
                    progress(summary.lines_read, summary.order_lines)
        await loader.flush()
        await loader.finish()
    except BaseException:
        await loader.abandon()
        raise
    await programs.reevaluate_store(
        conn, store_id=store.store_id, program=program, now=now, reason="backfill"
    )
    summary.customers = len(loader.customer_ids)
    summary.members_created = await repo.count_members(conn, store_id=store.store_id) - members_before
    summary.products = len(loader.product_ids)
    summary.seconds = round(time.perf_counter() - started, 3)
    if progress is not None:
        progress(summary.lines_read, summary.order_lines)
    return summary
