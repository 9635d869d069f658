"""The `patron` command line. Every command reads the same configuration as the server."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from plugin.cli._common import _positive, _since, _with_runtime
from plugin.cli._data import reconcile_woocommerce, run_backfill, run_demo
from plugin.cli._program import care_run, program_export, program_import
from plugin.cli._server import run_migrate, run_worker, serve, settings_env, store_create
from plugin.logs import configure_logging
from plugin.recommender_cli import add_commands as add_recommender_commands
from plugin.settings import ConfigError, Settings, load_settings

Command = Callable[[Settings, argparse.Namespace], int]


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

    worker = commands.add_parser("worker", parents=[common], help="run the background worker")
    worker.add_argument("--host", help="bind address of the metrics port (PATRON_HOST)")
    worker.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port (PATRON_METRICS_PORT)"
    )
    worker.set_defaults(run=run_worker)
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


_SETTINGS_FLAGS = ("data_dir", "host", "port", "workers", "worker", "metrics_port")


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


__all__ = ["main", "settings_env"]
