"""`python -m tests.bench.delivery`: outbound webhook throughput and outbox lag to a local receiver.

Outbox rows are committed the way domain changes commit them (one transaction each, unless the
phase says otherwise); the delivery pump (hooks/pump.py) runs in this process as it runs in a
worker; the receiver is a separate process on 127.0.0.1 that prints when each message arrived.
Lag is receipt minus commit, both on this machine's wall clock. Phases:

- burst: N rows committed at once, then drained: deliveries per second;
- paced: rows committed one by one at a steady rate below that: lag p50/p99 under load;
- rest: one row at a time, a pause between: lag when idle (LISTEN/NOTIFY, not a poll);
- raw: the same number of bare POSTs to the same receiver at the same concurrency, without
  PostgreSQL: what this machine's HTTP round trips allow right now, to read the burst figure against.

PostgreSQL: `PATRON_BENCH_DATABASE_URL` or an embedded one in a temp dir; the run works in a
database of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from hooks import endpoints
from hooks.delivery import Sender
from hooks.endpoints import WebhookEndpointCreate
from hooks.pump import DeliveryPump
from loyalty import stores
from loyalty.stores import StoreCreate
from plugin import database, embedded
from plugin.migrations import migrate
from tests.receiver import OK, Receiver, Request


@contextlib.asynccontextmanager
async def bench_database() -> AsyncIterator[str]:
    server_url = os.environ.get("PATRON_BENCH_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="patron-bench-") as tmp:
        handle = None
        if server_url is None:
            server_url, handle = embedded.start_postgres(Path(tmp))
        name = "patron_bench_" + secrets.token_hex(4)
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            yield urlunsplit(urlsplit(server_url)._replace(path="/" + name))
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
            if handle is not None:
                embedded.EmbeddedServers(server_url, "", [handle]).close()


async def serve_receiver() -> None:
    """The receiver process: prints `port` once listening, then `seq time` per message."""

    def record(request: Request) -> object:
        sys.stdout.write(f"{request.json()['data']['seq']} {time.time()}\n")
        return OK

    async with Receiver(record) as receiver:  # type: ignore[arg-type]
        print(receiver.port, flush=True)
        while True:
            await asyncio.sleep(0.05)
            sys.stdout.flush()


class Arrivals:
    """Reads the receiver's lines; `wait(n)` until n distinct messages arrived."""

    def __init__(self, stdout: asyncio.StreamReader) -> None:
        self.at: dict[int, float] = {}
        self._stdout = stdout
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while line := await self._stdout.readline():
            seq, at = line.split()
            self.at.setdefault(int(seq), float(at))
            self._changed.set()

    async def wait(self, count: int, within: float) -> None:
        async with asyncio.timeout(within):
            while len(self.at) < count:
                self._changed.clear()
                await self._changed.wait()


_BURST = """
INSERT INTO outbox (store_id, customer_id, event_type, payload)
SELECT $1, 'm' || (i % $3), 'points.changed', jsonb_build_object('seq', i, 'customer_id', 'm' || (i % $3))
FROM generate_series(0, $2 - 1) AS i
"""


async def commit_one(pool: asyncpg.Pool, store_id: str, seq: int, members: int) -> float:
    await pool.execute(
        "INSERT INTO outbox (store_id, customer_id, event_type, payload)"
        " VALUES ($1, $2, 'points.changed', $3)",
        store_id,
        f"m{seq % members}",
        {"store_id": store_id, "customer_id": f"m{seq % members}", "seq": seq},
    )
    return time.time()


async def raw_posts(url: str, count: int, concurrency: int, arrivals: Arrivals) -> float:
    """Bare POSTs through the delivery client, `concurrency` at a time; returns posts per second."""
    sender = Sender(allow_private=True, timeout=10, max_connections=concurrency)
    numbers = iter(range(count))
    before = len(arrivals.at)

    async def post_in_turn() -> None:
        for i in numbers:
            await sender.post(url, headers={"content-type": "application/json"}, body=_raw_body(-1 - i))

    started = time.time()
    await asyncio.gather(*(post_in_turn() for _ in range(concurrency)))
    await arrivals.wait(before + count, within=120)
    await sender.aclose()
    return count / (time.time() - started)


def _raw_body(seq: int) -> bytes:
    return b'{"type":"raw","data":{"seq":%d}}' % seq


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def lag_line(name: str, committed: dict[int, float], arrivals: Arrivals) -> str:
    lags = [(arrivals.at[seq] - at) * 1000 for seq, at in committed.items()]
    return (
        f"{name:<6} {len(lags):>6} msgs  lag p50 {percentile(lags, 50):7.1f} ms"
        f"  p99 {percentile(lags, 99):7.1f} ms  max {max(lags):7.1f} ms"
    )


async def bench(args: argparse.Namespace) -> None:
    async with bench_database() as url:
        pool = await database.create_pool(url, size=args.pool)
        async with pool.acquire() as conn:
            await migrate(conn)
            store = await stores.create_store(conn, StoreCreate(name="bench"))
        receiver = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.bench.delivery", "--serve-receiver", stdout=asyncio.subprocess.PIPE
        )
        assert receiver.stdout is not None
        port = int(await receiver.stdout.readline())
        async with pool.acquire() as conn:
            await endpoints.create(
                conn,
                store_id=store.store_id,
                data=WebhookEndpointCreate(url=f"http://127.0.0.1:{port}/hook", events=["points.changed"]),
                allow_private=True,
            )
        arrivals = Arrivals(receiver.stdout)
        pump = DeliveryPump(pool, retry_schedule=(1, 5), allow_private=True, concurrency=args.concurrency)
        stop = asyncio.Event()
        pumping = asyncio.create_task(pump.run(stop))
        try:
            load = os.getloadavg()[0]
            print(f"load average {load:.1f}; concurrency {args.concurrency}; members {args.members}")
            # Burst: a backlog committed in one transaction, then drained.
            await pool.execute(_BURST, store.store_id, args.messages, args.members)
            seq = args.messages - 1
            committed_at = time.time()
            await arrivals.wait(args.messages, within=600)
            took = max(arrivals.at.values()) - committed_at
            rate = args.messages / took
            print(f"burst  {args.messages:>6} msgs  {rate:7.0f} deliveries/s  (drained in {took:.2f} s)")

            # Paced: one commit at a time at half the burst rate.
            pace = args.rate or rate / 2
            committed: dict[int, float] = {}
            began = time.monotonic()
            for i in range(int(pace * args.seconds)):
                seq += 1
                await asyncio.sleep(max(0.0, began + i / pace - time.monotonic()))
                committed[seq] = await commit_one(pool, store.store_id, seq, args.members)
            await arrivals.wait(args.messages + len(committed), within=120)
            print(f"paced at {pace:.0f}/s:")
            print(lag_line("paced", committed, arrivals))

            # At rest: one message, then quiet, repeatedly.
            committed = {}
            for _ in range(args.rest):
                seq += 1
                committed[seq] = await commit_one(pool, store.store_id, seq, args.members)
                await arrivals.wait(len(arrivals.at) + 1, within=10)
                await asyncio.sleep(0.05)
            print(lag_line("rest", committed, arrivals))
            raw = await raw_posts(f"http://127.0.0.1:{port}/raw", args.messages, args.concurrency, arrivals)
            print(f"raw    {args.messages:>6} msgs  {raw:7.0f} posts/s  (no database, no signing)")
            print(f"load average {os.getloadavg()[0]:.1f} at the end")
        finally:
            stop.set()
            await pumping
            receiver.kill()
            await receiver.wait()
            await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.delivery", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--messages", type=int, default=3000, help="burst size")
    parser.add_argument("--members", type=int, default=200, help="distinct members (ordering keys)")
    parser.add_argument("--rate", type=float, default=0, help="paced commits per second (default: burst/2)")
    parser.add_argument("--seconds", type=float, default=10, help="paced phase length")
    parser.add_argument("--rest", type=int, default=50, help="messages sent one at a time when idle")
    parser.add_argument("--concurrency", type=int, default=32, help="attempts in flight")
    parser.add_argument("--pool", type=int, default=10, help="PostgreSQL connections")
    parser.add_argument("--serve-receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(serve_receiver() if args.serve_receiver else bench(args))


if __name__ == "__main__":
    main()
