"""`patron train` and `patron evaluate`: the recommender's commands (progress on stderr)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from plugin.runtime import Runtime
from plugin.settings import Settings
from recommender import repository

if TYPE_CHECKING:  # training code (and LightFM) is imported only by the commands that train
    from recommender.train import TrainConfig

RunWithRuntime = Callable[[Settings, Callable[[Runtime], Any]], int]

CSV_CUTS = ("2011-11-01", "2011-06-01")
"""The shared retail data's windows: the weeks before Christmas, and early summer."""


class _Bar:
    """One line per stage on stderr, redrawn in place: `final model [#####     ] 12/25`."""

    def __init__(self) -> None:
        self._stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        width = 24
        filled = width * done // max(total, 1)
        if stage != self._stage and self._stage:
            sys.stderr.write("\n")
        self._stage = stage
        sys.stderr.write(f"\r{stage:<18} [{'#' * filled}{' ' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
            self._stage = ""
        sys.stderr.flush()


def _config(args: argparse.Namespace) -> TrainConfig:
    from recommender.train import TrainConfig

    config = TrainConfig()
    if args.epochs is not None:
        config = replace(config, hyper=replace(config.hyper, epochs=args.epochs))
    return config


def _date(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_train(settings: Settings, args: argparse.Namespace, with_runtime: RunWithRuntime) -> int:
    from recommender.refresh import refresh

    async def body(runtime: Runtime) -> int:
        now = _date(args.now) if args.now else runtime.clock()
        async with runtime.pool.acquire() as conn:
            store_ids = [args.store] if args.store else await repository.stores(conn)
            for store_id in store_ids:
                print(f"training store {store_id}", file=sys.stderr)
                done = await refresh(
                    conn,
                    runtime.redis,
                    store_id=store_id,
                    now=now,
                    config=_config(args),
                    k=args.k,
                    threads=args.threads,
                    seed=args.seed,
                    report=_Bar(),
                )
                print(msgspec.json.encode(done).decode())
        return 0

    return with_runtime(settings, body)


def run_evaluate(settings: Settings, args: argparse.Namespace, with_runtime: RunWithRuntime) -> int:
    from recommender import evaluate, retail

    config = _config(args)
    report = _Bar()
    if args.csv:
        cuts = [_date(c) for c in (args.cut or CSV_CUTS)]
        print(f"reading {args.csv}", file=sys.stderr)
        purchases, catalogue, facts = retail.load(args.csv)
        results = evaluate.evaluate_purchases(
            purchases,
            catalogue,
            facts,
            cuts=cuts,
            weeks=args.weeks,
            k=args.k,
            config=config,
            threads=args.threads,
            seed=args.seed,
            report=report,
        )
    else:
        if not args.store:
            print("patron evaluate: give --store S or --csv PATH", file=sys.stderr)
            return 2

        async def body(runtime: Runtime) -> list[evaluate.WindowResult]:
            now = runtime.clock()
            cuts = (
                [_date(c) for c in args.cut]
                if args.cut
                else [now - timedelta(weeks=args.weeks), now - timedelta(weeks=args.weeks + 26)]
            )
            async with runtime.pool.acquire() as conn:
                return await evaluate.evaluate_store(
                    conn,
                    store_id=args.store,
                    cuts=cuts,
                    weeks=args.weeks,
                    k=args.k,
                    config=config,
                    threads=args.threads,
                    seed=args.seed,
                    report=report,
                )

        holder: list[list[evaluate.WindowResult]] = []

        async def keep(runtime: Runtime) -> int:
            holder.append(await body(runtime))
            return 0

        with_runtime(settings, keep)
        results = holder[0]
    if args.json:
        print(msgspec.json.encode(evaluate.as_json(results)).decode())
    else:
        print(evaluate.table(results, args.k))
    return 0


def add_commands(commands: Any, common: argparse.ArgumentParser, with_runtime: RunWithRuntime) -> None:
    """Register `train` and `evaluate` on the `patron` parser."""
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="training threads")
    shared.add_argument("--seed", type=int, default=0, help="random seed (same seed, same model)")
    shared.add_argument("--epochs", type=int, help="LightFM epochs (default: the evaluated choice)")

    train = commands.add_parser(
        "train", parents=[common, shared], help="train the recommender, precompute and publish top-K"
    )
    train.add_argument("--store", help="one store id (default: every store with orders)")
    train.add_argument("--k", type=int, default=50, help="products precomputed per list (max 127)")
    train.add_argument("--now", help="train as of this time (ISO), default now")
    train.set_defaults(run=lambda s, a: run_train(s, a, with_runtime))

    evaluate = commands.add_parser(
        "evaluate", parents=[common, shared], help="evaluate on a time split against baselines"
    )
    source = evaluate.add_mutually_exclusive_group()
    source.add_argument("--store", help="a store's orders in PostgreSQL")
    source.add_argument("--csv", help="the Online Retail CSV (.csv or .csv.gz)")
    evaluate.add_argument("--k", type=int, default=10)
    evaluate.add_argument("--weeks", type=int, default=4, help="test weeks after each cut-off")
    evaluate.add_argument("--cut", action="append", help="a cut-off date (repeatable)")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(run=lambda s, a: run_evaluate(s, a, with_runtime))
