"""One store's model refresh: read history, train, precompute every member's lists, store the artifact,
publish the lists to Redis, switch. What `patron train` and the worker's scheduled refresh run."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from redis.asyncio import Redis

from recommender import lists, publishing, repository, serving
from recommender.evaluate import targets
from recommender.lists import Recommender, TopLists
from recommender.metrics import score
from recommender.repository import Connection, NewModel
from recommender.train import Report, TrainConfig, TrainingData, describe, from_database, train, utc


@dataclass(frozen=True)
class Refreshed:
    """What a refresh did; `version` is None when the store had nothing to learn from."""

    store_id: str
    version: int | None
    members: int
    products: int
    interactions: int
    train_seconds: float
    precompute_seconds: float
    """Computing every member's lists, on a thread, overlapped with writing them."""
    publish_seconds: float
    """Computing and writing the lists to Redis, overlapped, first block to last row."""
    metrics: dict[str, object]


def popularity(data: TrainingData, days: float) -> np.ndarray:
    """Recent distinct buyers per product, all-time buyers breaking ties (and filling a quiet month)."""
    n_items = len(data.catalogue.product)
    all_time = np.bincount(data.history.item, minlength=n_items).astype(np.float64)
    recent = lists.recent_buyers(data.history, n_items, days)
    result: np.ndarray = recent + all_time / (all_time.max(initial=0.0) + 1.0)
    return result


def validation_metrics(data: TrainingData, rec: Recommender, k: int = 10) -> dict[str, float]:
    """Precision@k of mixed and discover of the validation-split model on the horizon after the split,
    as a health figure kept with the artifact (the rankers were fitted on this split: optimistic)."""
    users, any_, new, _ = targets(data.validation, data.labels, len(data.catalogue.product))
    if len(users) == 0:
        return {}
    top = lists.compute(rec, data.validation, data.catalogue, k=k, users=users)
    n_items = len(data.catalogue.product)
    return {
        f"validation_mixed_precision_at_{k}": round(score(top.mixed_items(), any_, n_items).precision, 4),
        f"validation_discover_precision_at_{k}": round(score(top.discover_items, new, n_items).precision, 4),
        "validation_members": len(users),
    }


@dataclass(frozen=True)
class Streamed:
    """A version's lists computed and written; computing the next block overlaps writing the last."""

    members: int
    compute_seconds: float
    """Wall time spent computing blocks of lists (in a worker thread)."""
    seconds: float
    """Wall time of the whole stage, computing and writing overlapped, from the first block's start to
    the last row written."""


async def publish_lists(
    redis: Redis,
    *,
    store_id: str,
    version: int,
    rec: Recommender,
    data: TrainingData,
    popularity: np.ndarray,
    k: int,
    threads: int = 1,
    block: int = lists.STREAM_BLOCK,
) -> Streamed:
    """Every member's lists into Redis under `version` (not live until `serving.switch`): blocks of
    members are computed on a thread (`lists.stream`, its pool a block ahead) while the event loop
    writes the block before, so Redis round trips hide behind the matrix products and a few blocks
    are held at once."""
    pairs, catalogue = data.history, data.catalogue
    started = time.perf_counter()
    publisher = publishing.Publisher(redis, store_id=store_id, version=version, k=k)
    await publisher.catalogue(catalogue, popularity, pairs.n_users)
    blocks = lists.stream(rec, pairs, catalogue, k=k, block=block, threads=threads)
    computing = 0.0

    def compute_next() -> TopLists | None:
        nonlocal computing
        began = time.perf_counter()
        top = next(blocks, None)
        computing += time.perf_counter() - began
        return top

    # run_in_executor hands the next block to its thread at once; `to_thread` would start only when the
    # loop next turns, after this block's encoding, leaving the pool without work meanwhile.
    loop = asyncio.get_running_loop()
    pending = loop.run_in_executor(None, compute_next)
    try:
        while (top := await pending) is not None:
            pending = loop.run_in_executor(None, compute_next)
            await publisher.lists(top)
    finally:
        if not pending.done():  # writing failed: let the block in hand finish before closing the stream
            with contextlib.suppress(Exception):
                await pending
        blocks.close()
    await publisher.cold_start(catalogue, popularity, data.facts, pairs.members, pairs.n_users)
    return Streamed(publisher.members, computing, time.perf_counter() - started)


async def refresh(
    conn: Connection,
    redis: Redis,
    *,
    store_id: str,
    now: datetime,
    config: TrainConfig,
    k: int = 50,
    threads: int = 1,
    seed: int = 0,
    report: Report | None = None,
) -> Refreshed:
    """Train the store's model on history up to `now` and make it live. CPU work runs in a thread."""
    data = await from_database(conn, store_id=store_id, until=now, config=config)
    n_items, pairs = len(data.catalogue.product), data.history
    if pairs.n_users == 0 or n_items == 0:
        return Refreshed(store_id, None, 0, n_items, 0, 0.0, 0.0, 0.0, {})
    started = time.perf_counter()
    measured: dict[str, float] = {}

    def measure(validation: Recommender) -> None:
        measured.update(validation_metrics(data, validation))

    rec = await asyncio.to_thread(
        train, data, config, threads=threads, seed=seed, report=report, on_validation=measure
    )
    trained = time.perf_counter()
    metrics: dict[str, object] = {**measured, "rankers": describe(rec)}
    async with conn.transaction():
        version = await repository.insert_model(
            conn,
            NewModel(
                store_id=store_id,
                window_start=utc(float(pairs.first_at.min())),
                window_end=now,
                hyper={
                    **config.hyper.as_dict(),
                    "half_life_days": config.half_life_days,
                    "horizon_days": config.horizon_days,
                    "seed": seed,
                    "k": k,
                },
                metrics=metrics,
                members=pairs.n_users,
                products=n_items,
                interactions=len(pairs.user),
                arrays=rec.to_bytes(),
            ),
        )
    published = await publish_lists(
        redis,
        store_id=store_id,
        version=version,
        rec=rec,
        data=data,
        popularity=popularity(data, config.popularity_days),
        k=k,
        threads=threads,
    )
    async with conn.transaction():
        await repository.set_live(conn, store_id=store_id, version=version)
    await serving.switch(redis, store_id=store_id, version=version)
    return Refreshed(
        store_id=store_id,
        version=version,
        members=pairs.n_users,
        products=n_items,
        interactions=len(pairs.user),
        train_seconds=round(trained - started, 2),
        precompute_seconds=round(published.compute_seconds, 2),
        publish_seconds=round(published.seconds, 2),
        metrics=metrics,
    )
