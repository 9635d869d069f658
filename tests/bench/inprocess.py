"""`python -m tests.bench.inprocess`: the client-side CPU one request costs Patron, with no HTTP server.

The ASGI app is called directly, one request at a time, against PostgreSQL and Redis (the
`PATRON_BENCH_*` URLs, or embedded servers in a temp dir). It reports this process's CPU time per
request (Litestar, msgspec, asyncpg's client side, Patron) — not wall time and not PostgreSQL's CPU —
so it holds steady on a busy machine where throughput benchmarks do not. With `--profile FILE` the
measured loop runs under cProfile (sort the output with `python -m pstats FILE`).

    python -m tests.bench.inprocess order_paid --requests 3000
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from loyalty.stores import StoreCreated
from plugin.app import create_app
from plugin.settings import load_settings
from tests.asgi import http_scope
from tests.bench.__main__ import _migrate, backing_servers
from tests.bench.loadgen import build_request
from tests.bench.scenarios import HOST_HEADER, PLATFORM_SECRETS, SCENARIOS, BenchContext, Scenario
from tests.bench.servers import server_env

ADMIN_TOKEN = "inprocess-" + secrets.token_hex(8)
STATUSES: Counter[int] = Counter()


def _split(raw: bytes) -> tuple[str, str, list[tuple[bytes, bytes]], bytes]:
    """A pre-encoded HTTP/1.1 request (tests/bench/loadgen.py) as method, path, headers and body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    request_line, *header_lines = head.split(b"\r\n")
    method, target, _ = request_line.decode().split(" ")
    headers = []
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
    return method, target, headers, body


async def _request(app: Any, raw: bytes) -> bytes:
    """Answer one request in-process; its body. Statuses are counted in STATUSES."""
    method, target, headers, body = _split(raw)
    scope = http_scope(method, target, headers, server="127.0.0.1")
    answer: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            STATUSES[message["status"]] += 1
        elif message["type"] == "http.response.body":
            answer.append(message.get("body", b""))

    await app(scope, receive, send)
    return b"".join(answer)


async def _lifespan(app: Any) -> Callable[[], Awaitable[None]]:
    """Start the app's lifespan; returns the coroutine function that shuts it down."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"startup failed: {started}")

    async def shutdown() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task

    return shutdown


async def run(scenario_name: str, requests: int, warmup: int, profile: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="patron-inprocess-") as work:
        async with backing_servers(Path(work)) as urls:
            await _migrate(urls["database"])
            env = server_env(urls, admin_token=ADMIN_TOKEN)
            app = create_app(load_settings({k: v for k, v in env.items() if k.startswith("PATRON_")}))
            shutdown = await _lifespan(app)
            redis = Redis.from_url(urls["redis"])
            try:
                await _measure(
                    app, redis, urls["database"], SCENARIOS[scenario_name], requests, warmup, profile
                )
            finally:
                await redis.aclose()
                await shutdown()


async def _measure(
    app: Any,
    redis: Redis,
    database_url: str,
    scenario: Scenario,
    requests: int,
    warmup: int,
    profile: Path | None,
) -> None:
    store = msgspec.json.decode(await _request(app, _store_request()), type=StoreCreated)
    # No set-up call goes through a server here: the scenarios that need one (`prepare`) are not run.
    context = BenchContext(store=store, patron=None, redis=redis, database_url=database_url)  # type: ignore[arg-type]
    bodies = scenario.patron(context)[: warmup + requests]
    if len(bodies) < warmup + requests:
        raise SystemExit(f"the scenario builds {len(bodies)} requests; ask for fewer")
    for raw in bodies[:warmup]:
        await _request(app, raw)
    profiler = cProfile.Profile(time.process_time) if profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for raw in bodies[warmup:]:
        await _request(app, raw)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"{scenario.name}: {requests} requests, {cpu / requests * 1e6:.0f} us CPU/request in this "
        f"process, {wall / requests * 1e6:.0f} us wall/request; statuses {dict(STATUSES)}"
    )


def _store_request() -> bytes:
    body = msgspec.json.encode(
        {"name": "inprocess", "currency": "EUR", "timezone": "UTC", "platform_secrets": PLATFORM_SECRETS}
    )
    return build_request(
        "POST",
        "/v1/admin/stores",
        host=HOST_HEADER,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_TOKEN}"},
        body=body,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.inprocess", description=__doc__.split("\n")[0]
    )
    parser.add_argument("scenario", choices=list(SCENARIOS))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--profile", type=Path, help="write cProfile stats of the measured loop here")
    args = parser.parse_args()
    asyncio.run(run(args.scenario, args.requests, args.warmup, args.profile))


if __name__ == "__main__":
    main()
