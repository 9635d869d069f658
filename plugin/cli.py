"""The `patron` command line. Every command reads the same configuration as the server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gzip
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import msgspec

from hooks import reconcile
from loyalty import backfill, programs, stores
from loyalty.backfill import BadLine, Summary
from loyalty.errors import PatronError
from loyalty.program import Program, decode, encode
from loyalty.repository import care_actions as care_repo
from loyalty.repository import stores as stores_repo
from loyalty.stores import StoreCreate
from plugin import care_jobs, database, demo, embedded
from plugin.lifespan import make_worker, open_runtime
from plugin.logs import configure_logging
from plugin.migrations import migrate
from plugin.progress import ProgressBar
from plugin.recommender_cli import add_commands as add_recommender_commands
from plugin.runtime import Runtime
from plugin.settings import ENV_PREFIX, ConfigError, Settings, load_settings

Command = Callable[[Settings, argparse.Namespace], int]


def settings_env(settings: Settings) -> dict[str, str]:
    """Settings as `PATRON_*` variables, so server worker processes see exactly what the CLI resolved."""
    env = {}
    for name, value in msgspec.structs.asdict(settings).items():
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(str(item) for item in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[ENV_PREFIX + name.upper()] = str(value)
    return env


def serve(settings: Settings, _: argparse.Namespace) -> int:
    from granian.constants import Interfaces
    from granian.server import Server

    settings, servers = embedded.ensure_servers(settings)
    try:
        # Migrate once here so N server processes do not all queue on the migration lock at start.
        assert settings.database_url is not None
        asyncio.run(_migrate(settings.database_url))
        os.environ.update(settings_env(settings))
        Server(
            "plugin.app:create_app",
            factory=True,
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            workers=settings.workers,
            log_enabled=False,
        ).serve()
    finally:
        if servers is not None:
            servers.close()
    return 0


async def _migrate(database_url: str) -> list[str]:
    conn = await database.connect(database_url)
    try:
        return [f"{m.version:04d}_{m.name}" for m in await migrate(conn)]
    finally:
        await conn.close()


def _with_runtime(settings: Settings, body: Callable[[Runtime], Awaitable[int]]) -> int:
    async def run() -> int:
        async with open_runtime(settings) as runtime:
            return await body(runtime)

    return asyncio.run(run())


def run_worker(settings: Settings, _: argparse.Namespace) -> int:
    async def body(runtime: Runtime) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await make_worker(runtime).run(stop)
        return 0

    return _with_runtime(settings, body)


def run_migrate(settings: Settings, _: argparse.Namespace) -> int:
    settings, servers = embedded.ensure_servers(settings)
    try:
        assert settings.database_url is not None
        applied = asyncio.run(_migrate(settings.database_url))
    finally:
        if servers is not None:
            servers.close()
    print("\n".join(f"applied {name}" for name in applied) or "nothing to migrate")
    return 0


def store_create(settings: Settings, args: argparse.Namespace) -> int:
    try:
        data = msgspec.convert(
            {"name": args.name, "currency": args.currency, "timezone": args.timezone}, StoreCreate
        )
    except msgspec.ValidationError as exc:
        print(f"patron store create: {exc}", file=sys.stderr)
        return 2

    async def body(runtime: Runtime) -> int:
        try:
            async with runtime.pool.acquire() as conn, conn.transaction():
                created = await stores.create_store(conn, data)
        except PatronError as exc:
            print(f"patron store create: {exc.detail}", file=sys.stderr)
            return 2
        if args.json:
            print(msgspec.json.encode(created).decode())
        else:
            print(f"store_id        {created.store_id}")
            print(f"webhook_secret  {created.webhook_secret}")
            for scope, key in created.api_keys.items():
                print(f"{scope.value + ' key':<16}{key}")
        return 0

    return _with_runtime(settings, body)


Format = Literal["json", "yaml", "toml"]
_FORMATS: dict[str, Format] = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml"}


def _format_of(path: str) -> Format | None:
    return _FORMATS.get(Path(path).suffix.lower())


def program_export(settings: Settings, args: argparse.Namespace) -> int:
    fmt = cast(Format, args.format or (args.output and _format_of(args.output)) or "json")
    exported: list[Program] = []

    async def body(runtime: Runtime) -> int:
        async with runtime.pool.acquire() as conn:
            exported.append(await programs.live_program(conn, store_id=args.store))
        return 0

    status = _with_handled_errors("program export", settings, body)
    if status:
        return status
    program = exported[0]
    document = encode(program, fmt=fmt)
    if args.output:
        Path(args.output).write_bytes(document)
        print(f"wrote version {program.version} of {args.store}'s program to {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(document if document.endswith(b"\n") else document + b"\n")
        sys.stdout.flush()
    return 0


def program_import(settings: Settings, args: argparse.Namespace) -> int:
    fmt = _format_of(args.file)
    if fmt is None:
        print(
            f"patron program import: name the file .json, .yaml, .yml or .toml: {args.file}", file=sys.stderr
        )
        return 2
    try:
        program = decode(Path(args.file).read_bytes(), fmt=fmt)
    except OSError as exc:
        print(f"patron program import: {exc}", file=sys.stderr)
        return 2
    except PatronError as exc:
        print(f"patron program import: {exc.extra.get('field', 'program')}: {exc.detail}", file=sys.stderr)
        return 2

    async def body(runtime: Runtime) -> int:
        # The same publish as PUT /v1/program, based on the version live now.
        async with runtime.pool.acquire() as conn, conn.transaction():
            current = await programs.live_version(conn, store_id=args.store)
            published = await programs.publish(
                conn,
                store_id=args.store,
                program=program,
                expected_version=current,
                actor="cli",
                now=runtime.clock(),
            )
        print(f"published version {published.version} of {args.store}'s program (was {current})")
        return 0

    return _with_handled_errors("program import", settings, body)


def _with_handled_errors(name: str, settings: Settings, body: Callable[[Runtime], Awaitable[int]]) -> int:
    try:
        return _with_runtime(settings, body)
    except PatronError as exc:
        print(f"patron {name}: {exc.detail}", file=sys.stderr)
        return 1


def _since(text: str) -> datetime:
    """An ISO 8601 time; one without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def care_run(settings: Settings, args: argparse.Namespace) -> int:
    """One care scan per store (or of `--store`), as of `--now` (default: the clock)."""

    async def body(runtime: Runtime) -> int:
        if args.now is not None:
            runtime = dataclasses.replace(runtime, clock=lambda: args.now)
        if args.store:
            store_ids = [args.store]
        else:
            async with runtime.pool.acquire() as conn:
                store_ids = [store_id for store_id, _ in await care_repo.stores(conn)]
        for store_id in store_ids:
            result = await care_jobs.scan_store(runtime, store_id=store_id)
            issued = ", ".join(f"{c.trigger} {c.actions}" for c in result.actions) or "no actions"
            cost = sum(c.cost for c in result.actions)
            print(
                f"{store_id} as of {result.now.isoformat()}: {issued}; gift cost {cost}; "
                f"deferred emitted {result.emitted_due}; attributed {result.attributed}"
            )
        return 0

    return _with_handled_errors("care run", settings, body)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="patron", description="Loyalty and personalized care for storefronts."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="embedded servers' data (PATRON_DATA_DIR, default ./.patron)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_parser = commands.add_parser("serve", parents=[common], help="serve the API (and the worker)")
    serve_parser.add_argument("--host", help="bind address (PATRON_HOST)")
    serve_parser.add_argument("--port", type=int, help="port (PATRON_PORT)")
    serve_parser.add_argument("--workers", type=int, help="server processes (PATRON_WORKERS)")
    serve_parser.add_argument(
        "--no-worker",
        dest="worker",
        action="store_const",
        const=False,
        help="do not run the worker in-process",
    )
    serve_parser.set_defaults(run=serve)

    commands.add_parser("worker", parents=[common], help="run the background worker").set_defaults(
        run=run_worker
    )
    commands.add_parser("migrate", parents=[common], help="apply pending migrations").set_defaults(
        run=run_migrate
    )

    store = commands.add_parser("store", help="manage stores").add_subparsers(
        dest="store_command", required=True
    )
    create = store.add_parser("create", parents=[common], help="create a store and print its keys")
    create.add_argument("--name", required=True)
    create.add_argument("--currency", default="EUR")
    create.add_argument("--timezone", default="UTC")
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(run=store_create)

    program = commands.add_parser("program", help="a store's program document").add_subparsers(
        dest="program_command", required=True
    )
    export = program.add_parser("export", parents=[common], help="print or write the live program")
    export.add_argument("--store", required=True, help="store id")
    export.add_argument(
        "--format", choices=["json", "yaml", "toml"], help="default: from --output, else json"
    )
    export.add_argument("--output", help="write to this file instead of standard output")
    export.set_defaults(run=program_export)
    import_ = program.add_parser(
        "import", parents=[common], help="publish a program file (.json, .yaml, .toml) as the next version"
    )
    import_.add_argument("--store", required=True, help="store id")
    import_.add_argument("file")
    import_.set_defaults(run=program_import)

    care_parser = commands.add_parser("care", help="surprise gifts and proactive suggestions").add_subparsers(
        dest="care_command", required=True
    )
    care_run_parser = care_parser.add_parser(
        "run", parents=[common], help="one care scan now (the worker runs it hourly)"
    )
    care_run_parser.add_argument("--store", help="store id (default: every store)")
    care_run_parser.add_argument(
        "--now", type=_since, help="evaluate as of this ISO 8601 time (UTC unless it has an offset)"
    )
    care_run_parser.set_defaults(run=care_run)

    platforms = commands.add_parser(
        "reconcile", help="pull recent orders from a storefront platform and apply what webhooks missed"
    ).add_subparsers(dest="platform", required=True)
    woo = platforms.add_parser(
        "woocommerce", parents=[common], help="orders modified since a time, through the WooCommerce REST API"
    )
    woo.add_argument("--store", required=True, help="the Patron store id")
    woo.add_argument(
        "--since", required=True, type=_since, help="ISO 8601 time (UTC unless it has an offset)"
    )
    woo.add_argument("--per-page", type=int, default=100, help="orders per REST page (at most 100)")
    woo.set_defaults(run=reconcile_woocommerce)

    load = commands.add_parser(
        "backfill", parents=[common], help="load history from canonical events as JSON lines"
    )
    load.add_argument("--store", required=True, help="store id")
    load.add_argument("file", help="JSON lines, one {type, data} event each (gzip or plain)")
    load.add_argument(
        "--award-points",
        action="store_true",
        help="award the orders' points as the webhooks would (slower); otherwise none",
    )
    load.set_defaults(run=run_backfill)

    show = commands.add_parser(
        "demo", parents=[common], help="create a demo store from real purchase history"
    )
    show.add_argument("--members", type=_positive, help="only the first N of the extract's 400 customers")
    show.set_defaults(run=run_demo)

    add_recommender_commands(commands, common, _with_runtime)
    return parser


_SETTINGS_FLAGS = ("data_dir", "host", "port", "workers", "worker")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {name: getattr(args, name, None) for name in _SETTINGS_FLAGS}
    try:
        settings = load_settings(os.environ, **overrides)
    except ConfigError as exc:
        print(f"patron: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    command: Command = args.run
    with contextlib.suppress(KeyboardInterrupt):
        return command(settings, args)
    return 130


if __name__ == "__main__":
    sys.exit(main())
