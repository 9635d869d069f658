"""`make loadtest`: start (or target) a Patron, provision a store, run Locust headless, write a report.

    python deploy/loadtest/run.py [--users 30] [--duration 60] [--target URL --admin-token T]

Without `--target` it starts `patron serve` on a free loopback port with embedded PostgreSQL and
Redis in a temporary directory (or `--data-dir`), as `make run` does. Then, through the API only:
a store from `POST /v1/admin/stores`, a three-tier program with care triggers, a catalogue, and
`--members` customers with one to four paid orders each over the last half year, sent as signed
webhooks. A local Patron is then trained (`patron train`) so that recommendation reads serve real
lists. Locust runs the scenarios of locustfile.py for `--duration` seconds; the report (markdown:
throughput, p50/p95/p99 and failures per endpoint, the machine's load) goes to
`loadtest-results/<time>.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import re
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hooks.signing import sign  # noqa: E402 - after the repository root is on the path
from tests.bench.servers import free_port, process_tree_cpu  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = ROOT / "loadtest-results"
CATEGORIES = ("coffee", "tea", "snacks", "kitchen", "gifts", "home")

PROGRAM: dict[str, Any] = {
    "points": {"per_currency_unit": 1, "expiry_days": 365, "pending_days": 0},
    "tiers": {
        "metric": "spend",
        "window_days": 365,
        "downgrade_grace_days": 30,
        "levels": [
            {"code": "member", "name": "Member", "threshold": 0, "multiplier": 1.0},
            {"code": "silver", "name": "Silver", "threshold": 10000, "multiplier": 1.25},
            {"code": "gold", "name": "Gold", "threshold": 30000, "multiplier": 1.5},
        ],
    },
    "rules": [{"kind": "category_bonus", "category": "coffee", "multiplier": 2.0}],
    "rewards": [{"id": "voucher-5", "name": "5 EUR voucher", "cost": 500, "kind": "voucher", "value": 500}],
    "care": {
        "gift_budget_per_month": 20000,
        "member_gift_cooldown_days": 90,
        "triggers": [
            {"kind": "milestone", "orders": [5, 10], "gift": {"kind": "voucher", "value": 1000}},
            {"kind": "service_recovery", "gift": {"kind": "voucher", "value": 1000}},
            {"kind": "replenish", "days_before": 3},
            {"kind": "tier_within_reach", "within_percent": 10},
            {"kind": "points_expiring", "days_before": 30},
        ],
    },
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", help="a running Patron's base URL (default: start one locally)")
    parser.add_argument("--admin-token", default=os.environ.get("PATRON_ADMIN_TOKEN"), help="for --target")
    parser.add_argument("--users", type=int, default=30, help="concurrent Locust users")
    parser.add_argument("--spawn-rate", type=float, default=10.0, help="users started per second")
    parser.add_argument("--duration", type=int, default=60, help="seconds of load")
    parser.add_argument("--members", type=int, default=300, help="customers provisioned with order history")
    parser.add_argument("--server-workers", type=int, default=1, help="`patron serve --workers` (local only)")
    parser.add_argument("--data-dir", help="embedded servers' data (local only; default a temporary dir)")
    parser.add_argument("--no-train", action="store_true", help="skip `patron train` (local only)")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        metavar="USER",
        help="only these user classes of locustfile.py (Storefront, App, ServiceDesk, Marketer); default all",
    )
    parser.add_argument("--output", type=Path, help="the report (default loadtest-results/<time>.md)")
    return parser.parse_args(argv)


# --- a local Patron -----------------------------------------------------------------------------------


def patron_env(data_dir: str, admin_token: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PATRON_")}
    env.update(PATRON_DATA_DIR=data_dir, PATRON_ADMIN_TOKEN=admin_token, PATRON_LOG_LEVEL="WARNING")
    # This script trains once before the load; the worker's own daily training would run during it.
    env.update(PATRON_TRAIN_IN_WORKER="false")
    return env


def embedded_pids(data_dir: Path) -> dict[str, int]:
    """The embedded PostgreSQL postmaster and Redis server that serve a data dir, by name."""
    pids = {}
    with contextlib.suppress(OSError, ValueError, IndexError):
        pids["PostgreSQL"] = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if (
                entry.name.isdigit()
                and b"redis-server" in (entry / "cmdline").read_bytes()
                and Path(os.readlink(entry / "cwd")) == data_dir.resolve()
            ):
                pids["Redis"] = int(entry.name)
    return pids


def stop_leftovers(data_dir: Path) -> None:
    """Stop embedded servers still running once `patron serve` has exited (the last process to let go
    of them should have; this makes sure a run leaves nothing behind)."""
    for name, pid in embedded_pids(data_dir).items():
        with contextlib.suppress(ProcessLookupError):
            # PostgreSQL's fast shutdown is SIGINT; SIGTERM would wait for every client to leave.
            os.kill(pid, signal.SIGINT if name == "PostgreSQL" else signal.SIGTERM)
            print(f"stopped the embedded {name} (pid {pid}) left running", file=sys.stderr)


@contextlib.contextmanager
def local_patron(
    args: argparse.Namespace, data_dir: str, admin_token: str, log: Path
) -> Iterator[tuple[str, int]]:
    """`patron serve` on a free loopback port until the block ends; yields its URL and pid."""
    port = free_port()
    command = [sys.executable, "-m", "plugin.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(args.server_workers)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=patron_env(data_dir, admin_token), stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise SystemExit(f"patron serve exited with {process.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"patron serve did not become ready in 180 s; see {log}")
            time.sleep(0.5)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        stop_leftovers(Path(data_dir))


# --- provisioning through the API ---------------------------------------------------------------------


def signed(secret: str, event_type: str, data: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"type": event_type, "data": data}).encode()
    msg_id, timestamp = f"msg_{secrets.token_hex(12)}", int(time.time())
    return body, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id=msg_id, timestamp=timestamp, body=body),
        "content-type": "application/json",
    }


def history(members: int, products: list[dict[str, Any]], rng: random.Random) -> Iterator[dict[str, Any]]:
    """order.paid payloads: each customer favours two categories, buys one to four times in 180 days."""
    now = datetime.now(UTC)
    for n in range(members):
        customer = {
            "customer_id": f"lt-{n:05d}",
            "email": f"lt-{n:05d}@example.com",
            "marketing_consent": True,
        }
        liked = set(rng.sample(CATEGORIES, 2))
        favourites = [p for p in products if p["category"] in liked]
        for k in range(rng.randint(1, 4)):
            chosen = rng.sample(favourites, rng.randint(1, 3))
            lines = [
                {
                    "line_id": str(i),
                    "product_id": p["product_id"],
                    "sku": p["product_id"].upper(),
                    "title": p["title"],
                    "category": p["category"],
                    "quantity": rng.randint(1, 2),
                    "unit_price": p["price"],
                    "discount": 0,
                }
                for i, p in enumerate(chosen, 1)
            ]
            subtotal = sum(line["quantity"] * line["unit_price"] for line in lines)
            yield {
                "order_id": f"hist-{n}-{k}",
                "customer": customer,
                "currency": "EUR",
                "subtotal": subtotal,
                "total": subtotal,
                "placed_at": (now - timedelta(days=rng.uniform(1, 180))).isoformat(),
                "lines": lines,
            }


async def provision(url: str, admin_token: str, members: int) -> dict[str, Any]:
    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        created = await client.post(
            "/v1/admin/stores",
            json={"name": "Load test", "currency": "EUR", "timezone": "Europe/Berlin"},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        if created.status_code != 201:
            raise SystemExit(f"POST /v1/admin/stores answered {created.status_code}: {created.text[:300]}")
        store = created.json()
        marketer = {"Authorization": f"Bearer {store['api_keys']['marketer']}"}
        live = await client.get("/v1/program", headers=marketer)
        published = await client.put(
            "/v1/program", json=PROGRAM, headers={**marketer, "If-Match": live.headers["ETag"]}
        )
        if published.status_code != 200:
            raise SystemExit(f"PUT /v1/program answered {published.status_code}: {published.text[:300]}")

        products: list[dict[str, Any]] = [
            {
                "product_id": f"p{n:03d}",
                "title": f"{CATEGORIES[n % len(CATEGORIES)].title()} {n}",
                "category": CATEGORIES[n % len(CATEGORIES)],
                "price": rng.choice((399, 599, 899, 1299, 1999, 2999)),
            }
            for n in range(60)
        ]
        sale: dict[str, Any] = {
            "product_id": "p-sale",
            "title": "Flash sale",
            "category": "sale",
            "price": 1999,
        }
        events: list[tuple[str, dict[str, Any]]] = [
            ("product.upserted", {**p, "brand": "Patron", "tags": [], "consumable_days": 30})
            for p in [*products, sale]
        ]
        events += [("order.paid", order) for order in history(members, products, rng)]
        gate = asyncio.Semaphore(8)

        async def send(event_type: str, data: dict[str, Any]) -> None:
            async with gate:
                body, headers = signed(store["webhook_secret"], event_type, data)
                response = await client.post(
                    f"/v1/hooks/standard/{store['store_id']}", content=body, headers=headers
                )
                if response.status_code != 200:
                    raise SystemExit(f"{event_type} answered {response.status_code}: {response.text[:300]}")

        for event_type, data in events[: len(products) + 1]:  # the catalogue before the orders
            await send(event_type, data)
        await asyncio.gather(*(send(event_type, data) for event_type, data in events[len(products) + 1 :]))
    return {
        "store_id": store["store_id"],
        "webhook_secret": store["webhook_secret"],
        "api_keys": store["api_keys"],
        "customers": [f"lt-{n:05d}" for n in range(members)],
        "products": products,
        "history_orders": len(events) - len(products) - 1,
    }


# --- the run and its report ---------------------------------------------------------------------------


def cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat."""
    fields = [float(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def shutdown_errors(log: Path) -> list[dict[str, str]]:
    """The error report Locust prints as it stops: it can hold a request that failed while the users
    were being stopped, after the last CSV was written."""
    errors, inside = [], False
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("Error report"):
            inside = True
        elif inside and (match := re.match(r"^(\d+)\s{2,}(\S+) (\S+): (.+?)\s*$", line)):
            errors.append({"Method": match[2], "Name": match[3], "Error": match[4], "Occurrences": match[1]})
    return errors


def read_stats(prefix: Path) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    with Path(f"{prefix}_stats.csv").open(newline="") as file:
        stats = list(csv.DictReader(file))
    with Path(f"{prefix}_failures.csv").open(newline="") as file:
        failures = list(csv.DictReader(file))
    return stats, failures


def report(
    args: argparse.Namespace,
    *,
    target: str,
    fixture: dict[str, Any],
    stats: list[dict[str, str]],
    failures: list[dict[str, str]],
    machine: dict[str, str],
) -> str:
    def ms(value: str) -> str:
        return "—" if value in {"", "N/A"} else f"{float(value):,.0f}"

    lines = [
        f"# Load test {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Target {target}; {args.users} users (spawned at {args.spawn_rate:g}/s) for {args.duration} s"
        f"{'; only ' + ', '.join(args.scenarios) if args.scenarios else ''}; "
        f"store with {len(fixture['customers'])} members and {fixture['history_orders']} orders of history.",
        "",
        *(f"- {name}: {value}" for name, value in machine.items()),
        "",
        "| endpoint | requests | failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in sorted(stats, key=lambda r: (r["Name"] == "Aggregated", r["Name"])):
        name = "**all**" if row["Name"] == "Aggregated" else f"{row['Type']} {row['Name']}".strip()
        lines.append(
            f"| {name} | {int(row['Request Count']):,} | {int(row['Failure Count']):,} "
            f"| {float(row['Requests/s']):,.1f} | {ms(row['50%'])} | {ms(row['95%'])} | {ms(row['99%'])} "
            f"| {ms(row['Max Response Time'])} |"
        )
    lines += ["", "## Failures", ""]
    if failures:
        lines += ["| endpoint | error | occurrences |", "| --- | --- | ---: |"]
        lines += [f"| {f['Method']} {f['Name']} | {f['Error']} | {f['Occurrences']} |" for f in failures]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def run_locust(args: argparse.Namespace, target: str, fixture_path: Path, prefix: Path, log: Path) -> int:
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("PATRON_")},
        "LOADTEST_FIXTURE": str(fixture_path),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless"]
    command += [
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        f"{args.duration}s",
    ]
    command += ["--host", target, "--csv", str(prefix), "--only-summary", "--stop-timeout", "10"]
    command += args.scenarios or []
    with log.open("wb") as output:
        return subprocess.call(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)


def train(data_dir: str, admin_token: str, store_id: str) -> None:
    command = [sys.executable, "-m", "plugin.cli", "train", "--store", store_id, "--threads", "1"]
    env = patron_env(data_dir, admin_token)
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)


def machine_conditions(
    args: argparse.Namespace, before: dict[str, Any], after: dict[str, Any], requests: int
) -> dict[str, str]:
    """The machine's load and each process's CPU per request over the run, for the report."""
    busy = (after["busy"][0] - before["busy"][0]) / (after["busy"][1] - before["busy"][1])
    load = f"load average {before['load']:.1f} before and {after['load']:.1f} after"
    conditions = {
        "machine": f"{os.cpu_count()} cores, {load}",
        "CPU busy during the run (whole machine)": f"{busy:.0%}",
    }
    if args.target is None:
        conditions["served by"] = (
            f"`patron serve --workers {args.server_workers}` (its worker in-process), "
            "embedded PostgreSQL and Redis"
        )
    used = {name: (after["cpu"][name] or 0.0) - (before["cpu"][name] or 0.0) for name in before["cpu"]}
    conditions["CPU per request"] = ", ".join(
        f"{name} {1e6 * seconds / max(requests, 1):,.0f} µs ({seconds:.1f} s)"
        for name, seconds in used.items()
    )
    return conditions


_DATABASE_FIGURES = """
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS wal,
       pg_database_size(current_database()) AS size,
       (SELECT count(*) FROM orders) AS orders, (SELECT count(*) FROM ledger_entries) AS entries
"""


async def analyze(socket_dir: str) -> None:
    """Statistics for the tables provisioning just filled: a live store's are kept by autovacuum long
    before anyone previews a program, a database loaded a second ago has none (measured: the first
    preview took 132 s without them, 26 s with them, then 1-2 s)."""
    import asyncpg

    conn = await asyncpg.connect(f"postgresql://postgres:@/postgres?host={socket_dir}")
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def database_figures(socket_dir: str) -> dict[str, Any]:
    """Write-ahead log position, size and row counts of the embedded PostgreSQL."""
    import asyncpg

    conn = await asyncpg.connect(f"postgresql://postgres:@/postgres?host={socket_dir}")
    try:
        row = await conn.fetchrow(_DATABASE_FIGURES)
        assert row is not None
        return dict(row)
    finally:
        await conn.close()


def database_growth(before: dict[str, Any], after: dict[str, Any]) -> str:
    orders = after["orders"] - before["orders"]
    wal, size = float(after["wal"] - before["wal"]), after["size"] - before["size"]
    return (
        f"{orders:,} orders and {after['entries'] - before['entries']:,} ledger entries written; "
        f"{wal / 1e6:,.1f} MB of WAL ({wal / max(orders, 1) / 1e3:,.1f} kB per order, everything else "
        f"written included), database {size / 1e6:+,.1f} MB ({size / max(orders, 1) / 1e3:,.1f} kB per order)"
    )


def snapshot(processes: dict[str, int]) -> dict[str, Any]:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # Locust, once it has exited
    cpu = {name: process_tree_cpu(pid) for name, pid in processes.items()}
    return {
        "busy": cpu_busy(),
        "load": os.getloadavg()[0],
        "cpu": {**cpu, "Locust": children.ru_utime + children.ru_stime},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    output = args.output or RESULTS / f"{datetime.now(UTC):%Y%m%dT%H%M%S}.md"
    work = Path(tempfile.mkdtemp(prefix="patron-loadtest-"))
    processes: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        if args.target:
            if not args.admin_token:
                raise SystemExit("--target needs --admin-token (or PATRON_ADMIN_TOKEN) to provision a store")
            target, admin_token = args.target.rstrip("/"), args.admin_token
        else:
            admin_token = secrets.token_urlsafe(24)
            data_dir = args.data_dir or str(work / "data")
            print(f"starting patron serve (data in {data_dir}, log {work / 'serve.log'})", file=sys.stderr)
            target, server_pid = stack.enter_context(
                local_patron(args, data_dir, admin_token, work / "serve.log")
            )
        print(f"provisioning {args.members} members on {target}", file=sys.stderr)
        fixture = asyncio.run(provision(target, admin_token, args.members))
        socket_dir = None if args.target else str(Path(data_dir).resolve() / "postgres")
        if socket_dir:
            asyncio.run(analyze(socket_dir))
            if not args.no_train:
                print("training the recommender (patron train)", file=sys.stderr)
                train(data_dir, admin_token, fixture["store_id"])
            processes = {"Patron": server_pid, **embedded_pids(Path(data_dir))}
        fixture_path = work / "fixture.json"
        fixture_path.write_text(json.dumps(fixture))

        print(f"running locust: {args.users} users for {args.duration} s", file=sys.stderr)
        before = snapshot(processes)
        database_before = asyncio.run(database_figures(socket_dir)) if socket_dir else None
        exit_code = run_locust(args, target, fixture_path, work / "locust", work / "locust.log")
        after = snapshot(processes)
        database_after = asyncio.run(database_figures(socket_dir)) if socket_dir else None
        stats, failures = read_stats(work / "locust")
        known = {(f["Method"], f["Name"], f["Error"]) for f in failures}
        late = [
            e
            for e in shutdown_errors(work / "locust.log")
            if (e["Method"], e["Name"], e["Error"]) not in known
        ]
        failures += [{**error, "Error": f"{error['Error']} (as the run stopped)"} for error in late]

    requests = next(int(row["Request Count"]) for row in stats if row["Name"] == "Aggregated")
    machine = machine_conditions(args, before, after, requests)
    if database_before is not None and database_after is not None:
        machine["PostgreSQL"] = database_growth(database_before, database_after)
    machine["locust exit code"] = f"{exit_code} (1 when any request failed)"
    output.write_text(
        report(args, target=target, fixture=fixture, stats=stats, failures=failures, machine=machine)
    )
    print(output.read_text())
    print(f"report: {output}; locust log: {work / 'locust.log'}", file=sys.stderr)
    return 0 if exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
