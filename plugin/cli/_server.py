"""Running Patron: serve, the worker, migrations, and creating stores."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import msgspec

from loyalty import stores
from loyalty.errors import PatronError
from loyalty.stores import StoreCreate
from plugin import embedded, metrics
from plugin.cli._common import _migrate, _with_runtime
from plugin.lifespan import make_worker
from plugin.runtime import Runtime
from plugin.settings import ENV_PREFIX, Settings


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
        with metrics.multiprocess_mode(settings.workers):
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


def run_worker(settings: Settings, _: argparse.Namespace) -> int:
    async def body(runtime: Runtime) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await make_worker(runtime).run(stop)
        return 0

    with metrics.worker_metrics(settings):
        return _with_runtime(settings, body)


def run_migrate(settings: Settings, _: argparse.Namespace) -> int:
    settings, servers = embedded.ensure_servers(settings, redis=False)
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
