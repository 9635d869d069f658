"""The `patron` command line. Every command reads the same configuration as the server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from loyalty import stores
from loyalty.stores import StoreCreate
from plugin import database, embedded
from plugin.lifespan import make_worker, open_runtime
from plugin.logs import configure_logging
from plugin.migrations import migrate
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
        async with runtime.pool.acquire() as conn, conn.transaction():
            created = await stores.create_store(conn, data)
        if args.json:
            print(msgspec.json.encode(created).decode())
        else:
            print(f"store_id        {created.store_id}")
            print(f"webhook_secret  {created.webhook_secret}")
            for scope, key in created.api_keys.items():
                print(f"{scope.value + ' key':<16}{key}")
        return 0

    return _with_runtime(settings, body)


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
