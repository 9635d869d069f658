"""Loading data: backfill, the demo store, WooCommerce reconciliation."""

from __future__ import annotations

import argparse
import contextlib
import gzip
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from hooks import reconcile
from loyalty import backfill
from loyalty.backfill import BadLine, Summary
from loyalty.errors import PatronError
from loyalty.repository import stores as stores_repo
from plugin import demo
from plugin.cli._common import _with_runtime
from plugin.progress import ProgressBar
from plugin.runtime import Runtime
from plugin.settings import Settings


def reconcile_woocommerce(settings: Settings, args: argparse.Namespace) -> int:
    async def body(runtime: Runtime) -> int:
        try:
            report = await reconcile.reconcile_woocommerce(
                runtime.pool.acquire,
                store_id=args.store,
                since=args.since,
                now=runtime.clock,
                per_page=args.per_page,
                progress=lambda line: print(line, file=sys.stderr),
            )
        except PatronError as exc:
            print(f"patron reconcile woocommerce: {exc.detail}", file=sys.stderr)
            return 1
        counts = ", ".join(f"{name} {value}" for name, value in msgspec.structs.asdict(report).items())
        print(f"reconciled store {args.store} since {args.since.isoformat()}: {counts}")
        return 1 if report.failed else 0

    return _with_runtime(settings, body)


@contextlib.contextmanager
def _open_lines(path: Path) -> Iterator[tuple[Iterator[bytes], Callable[[], int]]]:
    """The file's lines (gzip or plain, by its first bytes) and a function telling how far in it is."""
    with path.open("rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if compressed:
            with gzip.GzipFile(fileobj=raw) as unzipped:
                yield iter(unzipped), raw.tell
        else:
            yield iter(raw), raw.tell


def _print_summary(summary: Summary) -> None:
    rows = [
        ("customers", f"{summary.customers:,} ({summary.members_created:,} new members)"),
        ("products", f"{summary.products:,}"),
        ("orders", f"{summary.orders:,} ({summary.orders_known:,} already known)"),
        ("order lines", f"{summary.order_lines:,}"),
        ("refunds", f"{summary.refunds:,}"),
        ("cancellations", f"{summary.cancellations:,}"),
        ("parked", f"{summary.parked:,} (their orders are not known yet)"),
        ("seconds", f"{summary.seconds:.1f}"),
    ]
    print("\n".join(f"{name:<15}{value}" for name, value in rows))


def run_backfill(settings: Settings, args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"patron backfill: no file {path}", file=sys.stderr)
        return 2
    size = path.stat().st_size

    async def body(runtime: Runtime) -> int:
        async with runtime.pool.acquire() as conn:
            store = await stores_repo.get_store(conn, store_id=args.store)
            if store is None:
                print(f"patron backfill: no store {args.store}", file=sys.stderr)
                return 2
            with _open_lines(path) as (lines, position):
                bar = ProgressBar("backfill", total=size, position=position)
                try:
                    async with conn.transaction():
                        summary = await backfill.load(
                            conn,
                            store=store,
                            lines=lines,
                            now=runtime.clock(),
                            award=args.award_points,
                            progress=bar,
                        )
                except BadLine as exc:
                    print(f"\npatron backfill: {path}: {exc.detail}; nothing was written", file=sys.stderr)
                    return 1
                finally:
                    bar.close()
        _print_summary(summary)
        return 0

    return _with_runtime(settings, body)


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    async def body(runtime: Runtime) -> int:
        bar = ProgressBar("demo")
        try:
            async with runtime.pool.acquire() as conn, conn.transaction():
                made = await demo.create_demo(conn, now=runtime.clock(), members=args.members, progress=bar)
        finally:
            bar.close()
        print(demo.render(made, base_url=f"http://{settings.host}:{settings.port}"))
        return 0

    return _with_runtime(settings, body)
