"""Recommender benchmarks, standalone: `python -m tests.bench.recommender [precompute|train|read|all]`.

- precompute: members per second for the three top-50 lists over a 10,000-product catalogue
  (embeddings and biases as matrices, chunked matrix products, threshold top-K), for the binary
  encoding that goes to Redis, and for the whole of it into Redis as a refresh does it (lists
  computed in blocks on threads while the block before is written);
- train: seconds and peak memory (max RSS of a fresh process) for the full training (validation fit,
  rankers, final fit) on 1,000,000 member x product interactions;
- read: recommendation reads through `serving.Reader` against bare Redis GETs of the same-sized
  value, same connection and concurrency, in one run (throughput ratio and p99).
Each runs in a process of its own so memory figures are its own. Synthetic data, no shared files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from recommender import lists, publishing, ranking, serving
from recommender.dataset import SECONDS_PER_DAY, Catalogue, Interactions, MemberFacts
from recommender.embeddings import Embeddings
from recommender.lists import Recommender
from recommender.model import Hyper
from recommender.ranking import Logistic
from recommender.refresh import publish_lists
from recommender.serving import ROW_BYTES_PER_SLOT
from recommender.train import TrainConfig, TrainingData, train

DAY = SECONDS_PER_DAY


def catalogue(n_items: int, rng: np.random.Generator) -> Catalogue:
    return Catalogue(
        product=np.array([f"p{i:06d}" for i in range(n_items)], dtype=np.str_),
        category=np.array([f"c{i % 50}" for i in range(n_items)], dtype=np.str_),
        brand=np.array([f"b{i % 200}" for i in range(n_items)], dtype=np.str_),
        price=rng.lognormal(3, 1, n_items),
        tags=[(f"t{i % 97}", f"t{i % 31 + 100}") for i in range(n_items)],
        consumable_days=np.where(rng.random(n_items) < 0.2, 30.0, np.nan),
        active=rng.random(n_items) > 0.02,
    )


def interactions(
    n_users: int, n_items: int, per_user: int, until: float, rng: np.random.Generator
) -> Interactions:
    """`per_user` distinct products per member, drawn from a taste cluster plus popular ones."""
    cluster = rng.integers(0, 50, n_users)
    popular = rng.zipf(1.3, (n_users, per_user * 2)) % n_items
    own = (cluster[:, None] + 50 * rng.integers(0, n_items // 50, (n_users, per_user * 2))) % n_items
    pick = np.where(rng.random((n_users, per_user * 2)) < 0.5, popular, own)
    keys = np.unique(np.arange(n_users)[:, None] * n_items + pick)
    user, item = keys // n_items, keys % n_items
    keep = np.ones(len(keys), dtype=bool)
    _, first = np.unique(user, return_index=True)
    rank = np.arange(len(keys)) - np.repeat(first, np.diff(np.append(first, len(keys))))
    keep = rank < per_user
    user, item = user[keep], item[keep]
    n = len(user)
    orders = rng.geometric(0.5, n).astype(np.float64)
    last = until - rng.uniform(0, 365, n) * DAY
    first_at = last - (orders - 1) * rng.uniform(7, 60, n) * DAY
    return Interactions(
        members=np.array([f"m{u:07d}" for u in range(n_users)], dtype=np.str_),
        user=user.astype(np.int64),
        item=item.astype(np.int64),
        orders=orders,
        quantity=orders * rng.integers(1, 4, n),
        recency=orders * 0.5 ** ((until - last) / DAY / 90),
        first_at=first_at,
        last_at=last,
        median_gap=np.where(orders >= 2, (last - first_at) / DAY / np.maximum(orders - 1, 1), np.nan),
        until=until,
    )


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_precompute(members: int, items: int, k: int, components: int, threads: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    cat = catalogue(items, rng)
    pairs = interactions(members, items, 10, 1_700_000_000.0, rng)
    emb = Embeddings(
        user_vectors=rng.normal(0, 0.3, (members, components)).astype(np.float32),
        item_vectors=rng.normal(0, 0.3, (items, components)).astype(np.float32),
        item_bias=rng.normal(0, 0.5, items).astype(np.float32),
    )
    n_a, n_d = len(ranking.AGAIN_FEATURES), len(ranking.DISCOVER_FEATURES)
    rec = Recommender(
        members=pairs.members,
        products=cat.product,
        embeddings=emb,
        again=Logistic(rng.normal(size=n_a), np.zeros(n_a), np.ones(n_a), -3.0),
        discover=Logistic(np.array([0.5, 0.8, 0.3, -0.1]), np.zeros(n_d), np.ones(n_d), -6.0),
        half_life_days=90,
        horizon_days=28,
        popularity_days=28,
    )
    lists.compute(rec, pairs, cat, k=k, users=np.arange(min(members, 4096)), threads=threads)  # warm up
    context = ranking.Context.build(pairs, emb, lists.recent_buyers(pairs, items, 28))
    everyone = np.arange(members)
    load_before = os.getloadavg()[0]
    started, cpu = time.perf_counter(), time.process_time()
    lists.discover(rec, pairs, cat, context, k, everyone, threads=threads)
    discovered, discover_cpu = time.perf_counter(), time.process_time()
    top = lists.compute(rec, pairs, cat, k=k, threads=threads)
    computed, compute_cpu = time.perf_counter(), time.process_time()
    rows = publishing.encode_rows(top, k)
    blob = rows.tobytes()
    encoded = time.perf_counter()
    load_after = os.getloadavg()[0]
    del top, rows, blob
    written = asyncio.run(_into_redis(rec, pairs, cat, k, threads))
    return {
        "members": members,
        "products": items,
        "k": k,
        "components": components,
        "interactions": len(pairs.user),
        "threads": threads,
        "discover_top_k_members_per_second": round(members / (discovered - started)),
        "discover_top_k_members_per_cpu_second": round(members / (discover_cpu - cpu)),
        "discover_cpu_us_per_member": round((discover_cpu - cpu) / members * 1e6, 1),
        "all_lists_seconds": round(computed - discovered, 2),
        "all_lists_members_per_second": round(members / (computed - discovered)),
        "all_lists_members_per_cpu_second": round(members / (compute_cpu - discover_cpu)),
        "all_lists_cpu_us_per_member": round((compute_cpu - discover_cpu) / members * 1e6, 1),
        "load_average": load_after,
        "load_average_before": load_before,
        "encode_members_per_second": round(members / (encoded - computed)),
        "bytes_per_member": ROW_BYTES_PER_SLOT * k,
        **written,
        "max_rss_mb": round(_max_rss_mb()),
    }


async def _into_redis(
    rec: Recommender, pairs: Interactions, cat: Catalogue, k: int, threads: int
) -> dict[str, float]:
    """What a refresh does after training: every member's lists computed and written to Redis, the
    next block computing while the last is written (`refresh.publish_lists`)."""
    from redis.asyncio import Redis

    from plugin import embedded

    url = os.environ.get("PATRON_BENCH_REDIS_URL")
    handle = None
    if url is None:
        url, handle = embedded.start_redis(Path(tempfile.mkdtemp(prefix="patron-bench-")))
    redis = Redis.from_url(url)
    data = TrainingData(catalogue=cat, facts=None, history=pairs, validation=pairs, labels=pairs)
    load_before = os.getloadavg()[0]
    server_cpu = _server_cpu(handle)
    started, cpu = time.perf_counter(), time.process_time()
    streamed = await publish_lists(
        redis,
        store_id="st_bench_precompute",
        version=1,
        rec=rec,
        data=data,
        popularity=np.ones(len(cat.product)),
        k=k,
        threads=threads,
    )
    elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    server_used = _server_cpu(handle) - server_cpu
    load_after = os.getloadavg()[0]
    await redis.flushdb()
    await redis.aclose()
    if handle is not None:
        handle.shutdown()
    per_member = 1e6 / streamed.members
    return {
        "into_redis_members_per_second": round(streamed.members / elapsed),
        "into_redis_members_per_cpu_second": round(streamed.members / used),
        "into_redis_cpu_us_per_member": round(used * per_member, 1),
        "into_redis_server_cpu_us_per_member": round(server_used * per_member, 1),
        "into_redis_compute_seconds": round(streamed.compute_seconds, 2),
        "into_redis_seconds": round(elapsed, 2),
        "into_redis_load_average": load_after,
        "into_redis_load_average_before": load_before,
    }


def _server_cpu(handle: object) -> float:
    """CPU seconds the embedded redis-server has used (0 for an external server: not measured)."""
    pid = getattr(handle, "pid", None)
    if pid is None:
        return 0.0
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def bench_train(n_interactions: int, items: int, epochs: int | None, threads: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    cat = catalogue(items, rng)
    per_user = 10
    members = n_interactions // per_user
    until = 1_700_000_000.0
    history = interactions(members, items, per_user, until, rng)
    # The validation split: the same members' history minus their last 28 days, labels = those days.
    recent = history.last_at >= until - 28 * DAY
    validation = Interactions(
        members=history.members,
        user=history.user[~recent],
        item=history.item[~recent],
        orders=history.orders[~recent],
        quantity=history.quantity[~recent],
        recency=history.recency[~recent],
        first_at=history.first_at[~recent],
        last_at=history.last_at[~recent],
        median_gap=history.median_gap[~recent],
        until=until - 28 * DAY,
    )
    labels = Interactions(
        members=history.members,
        user=history.user[recent],
        item=history.item[recent],
        orders=np.ones(recent.sum()),
        quantity=np.ones(recent.sum()),
        recency=np.ones(recent.sum()),
        first_at=history.last_at[recent],
        last_at=history.last_at[recent],
        median_gap=np.full(recent.sum(), np.nan),
        until=until,
    )
    facts = MemberFacts(
        members_arr := history.members,
        np.full(len(members_arr), "member", dtype=np.str_),
        [() for _ in range(len(members_arr))],
    )
    data = TrainingData(catalogue=cat, facts=facts, history=history, validation=validation, labels=labels)
    config = TrainConfig()
    if epochs is not None:
        config = TrainConfig(hyper=Hyper(epochs=epochs))
    before = _max_rss_mb()
    stages: dict[str, float] = {}
    marks = {"t": time.perf_counter()}

    def report(stage: str, done: int, total: int) -> None:
        if done == total:
            now = time.perf_counter()
            stages[stage] = round(now - marks["t"], 1)
            marks["t"] = now
            print(f"  {stage}: {stages[stage]} s", file=sys.stderr, flush=True)

    started, cpu = time.perf_counter(), time.process_time()
    train(data, config, threads=threads, seed=0, report=report)
    return {
        "interactions": len(history.user),
        "members": members,
        "products": items,
        "epochs": config.hyper.epochs,
        "components": config.hyper.components,
        "threads": threads,
        "train_seconds": round(time.perf_counter() - started, 1),
        "train_cpu_seconds": round(time.process_time() - cpu, 1),
        "load_average": os.getloadavg()[0],
        "validation_fit_seconds": stages.get("validation model", 0.0),
        "final_fit_seconds": stages.get("final model", 0.0),
        "max_rss_mb_before": round(before),
        "max_rss_mb": round(_max_rss_mb()),
    }


async def _read(members: int, k: int, requests: int, concurrency: int) -> dict[str, float]:
    from redis.asyncio import Redis

    from plugin import embedded

    url = os.environ.get("PATRON_BENCH_REDIS_URL")
    handle = None
    if url is None:
        url, handle = embedded.start_redis(Path(tempfile.mkdtemp(prefix="patron-bench-")))
    redis = Redis.from_url(url)
    rng = np.random.default_rng(2)
    cat = catalogue(10_000, rng)
    pairs = interactions(members, 10_000, 10, 1_700_000_000.0, rng)
    top = lists.TopLists(
        members=pairs.members,
        again_items=rng.integers(0, 10_000, (members, k)),
        again_scores=rng.random((members, k)).astype(np.float32),
        again_reasons=np.zeros((members, k), dtype=np.int8),
        discover_items=rng.integers(0, 10_000, (members, k)),
        discover_scores=rng.random((members, k)).astype(np.float32),
        discover_reasons=np.full((members, k), 2, dtype=np.int8),
        mixed_source=rng.integers(0, 2, (members, k)).astype(np.int8),
        mixed_position=np.tile(np.arange(k), (members, 1)),
    )
    store = "st_bench"
    published = await publishing.publish(
        redis, store_id=store, version=1, top=top, catalogue=cat, popularity=np.ones(10_000), facts=None, k=k
    )
    await serving.switch(redis, store_id=store, version=1)
    sample = publishing.encode_rows(top, k)[0].tobytes()
    await redis.set("bench:bare", sample)
    reader = serving.Reader(redis)
    names = pairs.members.tolist()

    async def run(call: object, requests: int) -> tuple[float, list[float], float]:
        latencies: list[float] = []
        per_task = requests // concurrency

        async def worker(offset: int) -> None:
            for i in range(per_task):
                t = time.perf_counter()
                await call(names[(offset * per_task + i) % members])  # type: ignore[operator]
                latencies.append(time.perf_counter() - t)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed, used = time.perf_counter() - started, time.process_time() - cpu
        return len(latencies) / elapsed, latencies, used / len(latencies)

    async def bare(_: str) -> None:
        await redis.get("bench:bare")

    async def recommend(cid: str) -> None:
        await reader.read(store, cid, list_name="mixed", limit=10)

    # Short rounds, alternating, medians: on a shared machine, drift lands on both sides.
    rounds = 7
    through: dict[str, list[float]] = {"bare_get": [], "recommendations": []}
    latencies: dict[str, list[float]] = {"bare_get": [], "recommendations": []}
    cpu: dict[str, list[float]] = {"bare_get": [], "recommendations": []}
    for _ in range(rounds):
        for name, call in (("bare_get", bare), ("recommendations", recommend)):
            rate, lat, per = await run(call, requests // rounds)
            through[name].append(rate)
            latencies[name] += lat
            cpu[name].append(per)
    results = {
        name: (
            float(np.median(through[name])),
            float(np.percentile(latencies[name], 99) * 1000),
            float(np.median(cpu[name]) * 1e6),
        )
        for name in through
    }
    await redis.aclose()
    if handle is not None:
        handle.shutdown()
    return {
        "members_published": published.members,
        "publish_members_per_second": round(published.members / published.seconds),
        "concurrency": concurrency,
        "bare_get_per_second": round(results["bare_get"][0]),
        "bare_get_p99_ms": round(results["bare_get"][1], 3),
        "bare_get_cpu_us_per_request": round(results["bare_get"][2], 1),
        "recommendations_per_second": round(results["recommendations"][0]),
        "recommendations_p99_ms": round(results["recommendations"][1], 3),
        "recommendations_cpu_us_per_request": round(results["recommendations"][2], 1),
        "ratio": round(results["recommendations"][0] / results["bare_get"][0], 3),
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.recommender")
    parser.add_argument("what", nargs="?", default="all", choices=["precompute", "train", "read", "all"])
    parser.add_argument("--members", type=int, default=200_000)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--components", type=int, default=Hyper().components)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    if args.what == "all":
        for what in ("precompute", "read", "train"):
            forwarded = [a for a in sys.argv[1:] if a != "all"]
            command = [sys.executable, "-m", "tests.bench.recommender", what, *forwarded]
            subprocess.run(command, check=True)  # noqa: S603 -- our own module, our own arguments
        return
    if args.what == "precompute":
        result = bench_precompute(args.members, args.products, args.k, args.components, args.threads)
    elif args.what == "train":
        result = bench_train(args.interactions, args.products, args.epochs, args.threads)
    else:
        result = asyncio.run(_read(min(args.members, 100_000), args.k, args.requests, args.concurrency))
    print(json.dumps({args.what: result}))


if __name__ == "__main__":
    main()
