"""Benchmark: `patron backfill` of 1,000,000 order lines against a raw COPY of the same rows.

    python -m tests.bench.backfill /work/shared/data/online-retail/online_retail.csv.gz
    python -m tests.bench.backfill --synthetic 1000000

The events are written as a JSON lines file first; the backfill is timed from reading that file
to its commit (decoding, staging, members, orders, lines, catalogue, tiers). The baseline is one
COPY of the same order lines, already in memory as tuples, into a table without keys or indexes,
committed: the floor of getting those rows into PostgreSQL. Target: backfill >= 0.25 x baseline.

The real file has 541,909 invoice lines; its orders are replayed (order ids suffixed `~2`, `~3`,
...) until the wanted number of lines is reached. Guest invoices become one customer each;
cancellation invoices are left out (refunds are not what this measures).

Servers: PATRON_BENCH_DATABASE_URL (a scratch database is created there and dropped), else an
embedded PostgreSQL under a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import os
import random
import secrets
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from loyalty import backfill
from loyalty.repository import stores as stores_repo
from loyalty.stores import StoreCreate, create_store
from plugin import database, embedded
from plugin.migrations import migrate

RAW_TABLE = """
CREATE TABLE bench_raw_lines (
    order_id text, customer_id text, placed_at timestamptz, line_id text, product_id text, sku text,
    title text, category text, quantity integer, unit_price bigint, discount bigint
)
"""
# order_lines' own indexes and checks, no foreign key: what the schema alone costs per line.
INDEXED_TABLE = """
CREATE TABLE bench_indexed_lines (LIKE order_lines INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)
"""
Order = dict[str, Any]


def csv_orders(path: Path) -> list[Order]:
    """order.paid payloads, one per invoice of the Online Retail CSV (cancellations left out)."""
    with gzip.open(path, "rt", encoding="utf-8") as text:
        rows = list(csv.DictReader(text))
    orders: dict[str, Order] = {}
    for row in rows:
        quantity = int(row["Quantity"])
        if row["InvoiceNo"].startswith("C") or quantity <= 0:
            continue
        invoice = row["InvoiceNo"]
        order = orders.get(invoice)
        if order is None:
            customer = row["CustomerID"] or f"guest-{invoice}"
            order = orders[invoice] = {
                "order_id": invoice,
                "customer": {"customer_id": customer},
                "currency": "GBP",
                "placed_at": row["InvoiceDate"],
                "lines": [],
            }
        price = int(Decimal(row["UnitPrice"]) * 100)
        order["lines"].append({
            "line_id": str(len(order["lines"]) + 1), "product_id": row["StockCode"],
            "sku": row["StockCode"], "title": row["Description"] or None, "category": None,
            "quantity": quantity, "unit_price": max(price, 0),
        })  # fmt: skip
    return list(orders.values())


def synthetic_orders(lines: int, seed: int = 1) -> list[Order]:
    """Orders of 1-40 lines (20 on average) by 5,000 customers over 4,000 products in a year."""
    rng = random.Random(seed)
    start, orders, made = datetime(2025, 1, 1, tzinfo=UTC), [], 0
    categories = ["candles", "bags", "kitchen", "christmas", "cards", "jewellery", "garden", "toys"]
    while made < lines:
        count = min(rng.randint(1, 40), lines - made)
        placed = start + timedelta(seconds=rng.randrange(365 * 86400))
        order_lines = []
        for n in range(count):
            product = rng.randrange(4000)
            order_lines.append({
                "line_id": str(n + 1), "product_id": f"p{product}", "sku": f"SKU-{product}",
                "title": f"Product {product}", "category": categories[product % len(categories)],
                "quantity": rng.randint(1, 12), "unit_price": rng.randint(50, 5000),
            })  # fmt: skip
        orders.append({
            "order_id": f"o{len(orders)}", "customer": {"customer_id": f"c{rng.randrange(5000)}"},
            "currency": "EUR", "placed_at": placed.isoformat(), "lines": order_lines,
        })  # fmt: skip
        made += count
    return orders


def replayed(orders: list[Order], lines: int) -> list[Order]:
    """The orders again and again (ids suffixed) until they hold `lines` lines, cut to exactly that."""
    out, made, round_ = [], 0, 1
    while made < lines:
        for order in orders:
            if made >= lines:
                break
            kept = order["lines"][: lines - made]
            suffix = "" if round_ == 1 else f"~{round_}"
            out.append(order | {"order_id": order["order_id"] + suffix, "lines": kept})
            made += len(kept)
        round_ += 1
    for order in out:
        amount = sum(line["quantity"] * line["unit_price"] for line in order["lines"])
        order["subtotal"] = order["total"] = amount
    return out


def write_events(orders: list[Order], path: Path) -> None:
    """Products and customers first (as a shop's export would), then the orders."""
    products = {line["product_id"]: line for order in orders for line in order["lines"]}
    customers = {order["customer"]["customer_id"] for order in orders}
    encode = msgspec.json.Encoder().encode
    with path.open("wb") as out:
        for product_id, line in products.items():
            product = {"product_id": product_id, "title": line["title"], "price": line["unit_price"]}
            out.write(encode({"type": "product.upserted", "data": product}) + b"\n")
        for customer_id in sorted(customers):
            out.write(encode({"type": "customer.upserted", "data": {"customer_id": customer_id}}) + b"\n")
        for order in orders:
            out.write(encode({"type": "order.paid", "data": order}) + b"\n")


def raw_records(orders: list[Order]) -> list[tuple[Any, ...]]:
    records = []
    for order in orders:
        placed = datetime.fromisoformat(order["placed_at"])
        head = (order["order_id"], order["customer"]["customer_id"], placed)
        for line in order["lines"]:
            values = (line[key] for key in ("line_id", "product_id", "sku", "title", "category"))
            records.append((*head, *values, line["quantity"], line["unit_price"], 0))
    return records


class Clock:
    """Wall time, and CPU time of this process and of the connection's server process (when the
    server runs on this machine): CPU seconds do not depend on what else the machine is doing."""

    def __init__(self, backend_pid: int) -> None:
        self.stat = Path(f"/proc/{backend_pid}/stat")
        self.tick = os.sysconf("SC_CLK_TCK")

    def server_cpu(self) -> float:
        try:
            fields = self.stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / self.tick

    def now(self) -> tuple[float, float, float]:
        return time.perf_counter(), time.process_time(), self.server_cpu()


Timing = tuple[float, float, float]
"""(wall, client CPU, server CPU) seconds"""


def elapsed(start: tuple[float, float, float], end: tuple[float, float, float]) -> Timing:
    return end[0] - start[0], end[1] - start[1], end[2] - start[2]


async def copy_into(
    conn: asyncpg.Connection, clock: Clock, table: str, ddl: str, records: list[tuple[Any, ...]]
) -> Timing:
    await conn.execute(f"DROP TABLE IF EXISTS {table}")
    await conn.execute(ddl)
    started = clock.now()
    async with conn.transaction():
        await conn.copy_records_to_table(table, records=records)
    return elapsed(started, clock.now())


def indexed_records(records: list[tuple[Any, ...]], store_id: str) -> list[tuple[Any, ...]]:
    """The raw records in order_lines' column order (store_id, order_id, line_id, ... discount)."""
    return [(store_id, r[0], r[3], *r[4:], 0, 0) for r in records]


def file_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as lines:
        yield from lines


async def run_backfill(
    conn: asyncpg.Connection, clock: Clock, store_id: str, path: Path, *, award: bool
) -> tuple[Timing, Any]:
    store = await stores_repo.get_store(conn, store_id=store_id)
    assert store is not None
    started = clock.now()
    async with conn.transaction():
        summary = await backfill.load(
            conn, store=store, lines=file_lines(path), now=datetime.now(UTC), award=award
        )
    return elapsed(started, clock.now()), summary


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def bench(server_url: str, orders: list[Order], workdir: Path, *, award: bool) -> None:
    lines = sum(len(order["lines"]) for order in orders)
    events = workdir / "events.jsonl"
    write_events(orders, events)
    records = raw_records(orders)
    print(
        f"{lines:,} order lines in {len(orders):,} orders; events file {events.stat().st_size / 1e6:.0f} MB"
    )
    loads = [os.getloadavg()[0]]
    name = "patron_bench_" + secrets.token_hex(4)
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await database.connect(_with_database(server_url, name))
    try:
        await migrate(conn)
        async with conn.transaction():
            created = await create_store(conn, StoreCreate(name="bench", currency="GBP"))
        clock = Clock(conn.get_server_pid())
        raw_before = await copy_into(conn, clock, "bench_raw_lines", RAW_TABLE, records)
        loaded, summary = await run_backfill(conn, clock, created.store_id, events, award=award)
        loads.append(os.getloadavg()[0])
        raw_after = await copy_into(conn, clock, "bench_raw_lines", RAW_TABLE, records)
        indexed_rows = indexed_records(records, created.store_id)
        indexed = await copy_into(conn, clock, "bench_indexed_lines", INDEXED_TABLE, indexed_rows)
        loads.append(os.getloadavg()[0])
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    raw = tuple((a + b) / 2 for a, b in zip(raw_before, raw_after, strict=True))
    print(f"raw COPY   {_figures(lines, raw)}  (wall {raw_before[0]:.2f} s, {raw_after[0]:.2f} s)")
    print(f"backfill   {_figures(lines, loaded)}  ({summary.orders:,} orders, "
          f"{summary.members_created:,} members, {summary.products:,} products)")  # fmt: skip
    path = "fast path" if backfill.SKIP_KEY_CHECK else "lines checked by their foreign key"
    path = "--award-points: the per-event path" if award else path
    print(f"ratio      {raw[0] / loaded[0]:7.2f}    (target >= 0.25; {path})")
    cpu_raw, cpu_loaded = raw[1] + raw[2], loaded[1] + loaded[2]
    print(f"CPU ratio  {cpu_raw / cpu_loaded:7.2f}    (client and server CPU seconds: steadier when busy)")
    print(f"indexed    {_figures(lines, indexed)}  (COPY into a copy of order_lines with its indexes)")
    cpu_indexed = indexed[1] + indexed[2]
    floor = f"{raw[0] / indexed[0]:.2f} (CPU {cpu_raw / cpu_indexed:.2f})"
    print(f"           the schema alone allows a ratio of {floor}; backfill / indexed COPY "
          f"{indexed[0] / loaded[0]:.2f} (CPU {cpu_indexed / cpu_loaded:.2f})")  # fmt: skip
    averages = " / ".join(f"{avg:.2f}" for avg in loads)
    print(f"load avg   {averages}  (1 min: at start, after the backfill, at the end; {os.cpu_count()} CPUs)")


def _figures(lines: int, timing: Timing) -> str:
    wall, client, server = timing
    return f"{wall:7.2f} s {lines / wall:>10,.0f} lines/s  CPU {client:6.2f} s client {server:6.2f} s server"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("csv", nargs="?", type=Path, help="online_retail.csv.gz")
    source.add_argument("--synthetic", type=int, metavar="N", help="N synthetic order lines instead")
    parser.add_argument("--lines", type=int, default=1_000_000, help="order lines to load (default 1M)")
    parser.add_argument(
        "--checked", action="store_true", help="keep the per-line foreign-key check (the fallback path)"
    )
    parser.add_argument("--award", action="store_true", help="with --award-points (use fewer lines)")
    args = parser.parse_args()
    backfill.SKIP_KEY_CHECK = not args.checked
    orders = (
        synthetic_orders(args.synthetic) if args.synthetic else replayed(csv_orders(args.csv), args.lines)
    )
    if args.synthetic:
        orders = replayed(orders, args.synthetic)
    with tempfile.TemporaryDirectory(prefix="patron-bench-") as tmp:
        url = os.environ.get("PATRON_BENCH_DATABASE_URL")
        servers = None
        if url is None:
            url, handle = embedded.start_postgres(Path(tmp) / "servers")
            servers = embedded.EmbeddedServers(url, "", [handle])
        try:
            asyncio.run(bench(url, orders, Path(tmp), award=args.award))
        finally:
            if servers is not None:
                servers.close()


if __name__ == "__main__":
    main()
