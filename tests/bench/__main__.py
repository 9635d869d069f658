"""`python -m tests.bench` (`make bench`): Patron against a bare Litestar baseline, under each ASGI server.

Every (server, app) pair runs as its own subprocess on a loopback port against the same PostgreSQL
and Redis: embedded ones in a temp dir by default, or `PATRON_BENCH_DATABASE_URL` /
`PATRON_BENCH_REDIS_URL`, in a database of the run's own that is dropped at the end. The load comes
from this process (tests/bench/loadgen.py), the same connections and duration for every target.
Rounds alternate the order of the targets, so drift of the machine lands on both sides of a ratio.
Results go to the terminal and to `bench-results/<time>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.metadata
import os
import platform
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
from redis.asyncio import Redis

from loyalty.stores import StoreCreated
from plugin import database, embedded
from plugin.migrations import migrate
from tests.bench import report
from tests.bench.loadgen import build_request, fetch, run_load
from tests.bench.scenarios import HOST_HEADER, PLATFORM_SECRETS, SCENARIOS, BenchContext, Scenario
from tests.bench.servers import (
    APPS,
    DEFAULT_SERVERS,
    ROOT,
    SERVERS,
    RunningServer,
    process_tree_cpu,
    running_server,
    server_env,
)

ADMIN_TOKEN = "bench-" + secrets.token_hex(8)
# Above this 1-minute load average something else is using the cores the benchmark needs.
BUSY_LOAD = 1.0
PACKAGES = ("litestar", "msgspec", "granian", "uvicorn", "uvloop", "httptools", "redis", "asyncpg")


def _names(value: str, known: Sequence[str]) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(known)} (got {value!r})")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scenarios",
        type=lambda value: _names(value, list(SCENARIOS)),
        default=list(SCENARIOS),
        help=f"comma-separated, of: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--servers",
        type=lambda value: _names(value, list(SERVERS)),
        default=DEFAULT_SERVERS,
        help=f"comma-separated, of: {', '.join(SERVERS)} (default: {','.join(DEFAULT_SERVERS)})",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each run (2)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections (32)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per target, order alternating (3)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results", help="where the JSON goes")
    return parser


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@contextlib.asynccontextmanager
async def backing_servers(work_dir: Path) -> AsyncIterator[dict[str, str]]:
    """URLs of PostgreSQL (a fresh database, dropped on exit) and Redis: configured or embedded."""
    urls = {
        "database": os.environ.get("PATRON_BENCH_DATABASE_URL"),
        "redis": os.environ.get("PATRON_BENCH_REDIS_URL"),
    }
    handles = []
    async with contextlib.AsyncExitStack() as stack:
        if urls["database"] is None:
            urls["database"], handle = await asyncio.to_thread(embedded.start_postgres, work_dir)
            handles.append(handle)
        if urls["redis"] is None:
            urls["redis"], handle = await asyncio.to_thread(embedded.start_redis, work_dir)
            handles.append(handle)
        if handles:
            closing = embedded.EmbeddedServers("", "", handles)
            stack.push_async_callback(asyncio.to_thread, closing.close)
        server_url = urls["database"]
        assert server_url is not None
        name = "patron_bench_" + secrets.token_hex(4)
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                yield {"database": _with_database(server_url, name), "redis": str(urls["redis"])}
            finally:
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _migrate(database_url: str) -> None:
    # Once here, rather than by every server process as it starts.
    conn = await database.connect(database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def _create_store(patron: RunningServer) -> StoreCreated:
    body = msgspec.json.encode(
        {"name": "Bench shop", "currency": "EUR", "timezone": "UTC", "platform_secrets": PLATFORM_SECRETS}
    )
    request = build_request(
        "POST",
        "/v1/admin/stores",
        host=HOST_HEADER,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        body=body,
    )
    status, answer = await fetch(patron.host, patron.port, request)
    if status != 201:
        raise RuntimeError(f"POST /v1/admin/stores answered {status}: {answer!r}")
    return msgspec.json.decode(answer, type=StoreCreated)


def _environment() -> dict[str, object]:
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "packages": versions,
        "postgres": "configured" if "PATRON_BENCH_DATABASE_URL" in os.environ else "embedded",
        "redis": "configured" if "PATRON_BENCH_REDIS_URL" in os.environ else "embedded",
        "client_loop": "asyncio",
        "load_average": os.getloadavg(),
    }


async def _forget(redis: Redis, context: BenchContext) -> None:
    if context.written_keys:
        await redis.delete(*context.written_keys)


async def _measure(
    scenarios: list[Scenario],
    running: dict[tuple[str, str], RunningServer],
    context: BenchContext,
    args: argparse.Namespace,
) -> list[report.Measurement]:
    targets = []
    for scenario in scenarios:
        by_app = {"patron": scenario.patron(context), "baseline": scenario.baseline(context)}
        for server in args.servers:
            for app in APPS:
                targets.append((scenario, server, app, by_app[app]))
    measurements = []
    for round_number in range(args.rounds):
        for scenario, server, app, requests in targets if round_number % 2 == 0 else reversed(targets):
            target = running[server, app]
            load = functools.partial(
                run_load, target.host, target.port, requests, connections=args.connections
            )
            if args.warmup:
                await load(duration=args.warmup)
            cpu_before = process_tree_cpu(target.pid)
            result = await load(duration=args.duration)
            cpu_after = process_tree_cpu(target.pid)
            server_cpu_us = None
            if cpu_before is not None and cpu_after is not None and result.requests:
                server_cpu_us = round((cpu_after - cpu_before) / result.requests * 1e6, 1)
            print(
                f"  round {round_number + 1}/{args.rounds}  {scenario.name:<8}{server:<9}{app:<9}"
                f"{result.throughput:>9.0f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
                f"  server {server_cpu_us or 0:5.0f} us/req"
                + (f"  {result.errors} ERRORS {result.statuses}" if result.errors else ""),
                flush=True,
            )
            measurements.append(
                report.Measurement(
                    scenario=scenario.name,
                    server=server,
                    app=app,
                    round=round_number,
                    result=result,
                    server_cpu_us=server_cpu_us,
                )
            )
    return measurements


def _ratios(
    scenarios: list[Scenario], servers: list[str], measurements: list[report.Measurement]
) -> list[report.Ratio]:
    ratios = []
    for scenario in scenarios:
        pairs = [
            (f"patron/baseline ({server})", (server, "patron"), (server, "baseline"), scenario.target)
            for server in servers
        ]
        pairs += [
            (f"{server}/{servers[0]} ({app})", (server, app), (servers[0], app), None)
            for app in APPS
            for server in servers[1:]
        ]
        for label, numerator, denominator, target in pairs:
            ratio = report.paired_ratio(
                measurements,
                scenario=scenario.name,
                label=label,
                numerator=numerator,
                denominator=denominator,
                target=target,
            )
            if ratio is not None:
                ratios.append(ratio)
    return ratios


async def bench(args: argparse.Namespace) -> int:
    scenarios = [SCENARIOS[name] for name in args.scenarios]
    started = datetime.now(UTC)
    load_before = os.getloadavg()[0]
    if load_before > BUSY_LOAD:
        print(f"warning: load average {load_before:.1f} before the start: other work will skew the figures")
    with tempfile.TemporaryDirectory(prefix="patron-bench-") as work:
        work_dir = Path(work)
        async with backing_servers(work_dir) as urls, contextlib.AsyncExitStack() as stack:
            await _migrate(urls["database"])
            env = server_env(urls, admin_token=ADMIN_TOKEN)
            running = {}
            for server in args.servers:
                for app in APPS:
                    print(f"starting {app} under {server}", flush=True)
                    running[server, app] = await stack.enter_async_context(
                        running_server(server, app, env=env, log_dir=work_dir)
                    )
            patron = running[args.servers[0], "patron"]
            redis = Redis.from_url(urls["redis"])
            stack.push_async_callback(redis.aclose)
            context = BenchContext(
                store=await _create_store(patron), patron=patron, redis=redis, database_url=urls["database"]
            )
            stack.push_async_callback(_forget, redis, context)
            for scenario in scenarios:
                if scenario.prepare is not None:
                    await scenario.prepare(context)
            print(
                f"measuring {len(scenarios)} scenario(s) x {len(running)} servers x {args.rounds} rounds, "
                f"{args.connections} connections, {args.warmup:g}+{args.duration:g} s each",
                flush=True,
            )
            measurements = await _measure(scenarios, running, context, args)
            environment = _environment() | {"load_average_before": load_before}
    summaries = report.summarize(measurements)
    ratios = _ratios(scenarios, args.servers, measurements)
    print()
    print(report.render_table(summaries, ratios))
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"{started:%Y%m%dT%H%M%SZ}.json"
    document = {
        "started_at": started.isoformat(),
        "settings": {
            "scenarios": args.scenarios,
            "servers": args.servers,
            "duration": args.duration,
            "warmup": args.warmup,
            "connections": args.connections,
            "rounds": args.rounds,
        },
        "environment": environment,
        "summaries": summaries,
        "ratios": [msgspec.structs.asdict(ratio) | {"met": ratio.met} for ratio in ratios],
        "measurements": measurements,
    }
    path.write_bytes(msgspec.json.format(msgspec.json.encode(document)))
    print(f"\nwrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    errors = sum(summary.errors for summary in summaries)
    if errors:
        print(f"{errors} requests failed: the figures are not comparable", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
