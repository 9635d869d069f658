"""Start and stop what a Patron process needs: servers, pool, Redis, migrations, the worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import anyio.to_thread
from litestar import Litestar

from hooks import store_cache
from plugin import change_feed, database, embedded, recommender_jobs, redis_link
from plugin.auth import KeyResolver
from plugin.jobs import JOB_HANDLERS, PUMPS, SCHEDULES
from plugin.member_versions import MemberVersions
from plugin.migrations import migrate
from plugin.paid_batches import PaidOrderBatches
from plugin.rate_limits import rate_limiter
from plugin.runtime import Runtime
from plugin.settings import Settings
from plugin.worker import Worker

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Everything but the worker: used by the app and by CLI commands alike."""
    settings, servers = await anyio.to_thread.run_sync(embedded.ensure_servers, settings)
    assert settings.database_url is not None
    assert settings.redis_url is not None
    try:
        pool = await database.create_pool(settings.database_url, size=settings.db_pool_size)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            redis = redis_link.connect(settings.redis_url, timeout=settings.redis_timeout_seconds)
            paid_orders = PaidOrderBatches(pool)
            try:
                yield Runtime(
                    settings=settings,
                    pool=pool,
                    redis=redis,
                    keys=KeyResolver(pool, ttl=settings.key_cache_seconds),
                    member_versions=MemberVersions(pool),
                    limits=rate_limiter(redis, settings),
                    paid_orders=paid_orders,
                )
            finally:
                await paid_orders.aclose()
                await redis.aclose()
        finally:
            await database.close_pool(pool)
    finally:
        if servers is not None:
            await anyio.to_thread.run_sync(servers.close)


def make_worker(runtime: Runtime) -> Worker:
    schedules = [
        schedule
        for schedule in SCHEDULES
        if runtime.settings.train_in_worker or schedule is not recommender_jobs.SCHEDULE
    ]
    # The refresh handler stays: a refresh job someone enqueued is still run.
    return Worker(runtime=runtime, handlers=JOB_HANDLERS, schedules=schedules, pumps=PUMPS)


@contextlib.asynccontextmanager
async def run_worker(runtime: Runtime) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(make_worker(runtime).run(stop), name="patron-worker")
    try:
        yield
    finally:
        stop.set()
        await task


STOP_SECONDS = 5.0


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=STOP_SECONDS)
    if not done:
        log.warning("%s did not stop within %g s; leaving it", task.get_coro(), STOP_SECONDS)


def lifespan(settings: Settings) -> contextlib.AbstractAsyncContextManager[None]:
    @contextlib.asynccontextmanager
    async def patron_lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime, contextlib.AsyncExitStack() as stack:
            app.state.patron = runtime
            # Counts of the last moments reach Redis (other replicas go on limiting with them).
            stack.push_async_callback(lambda: runtime.limits.aclose())
            # Followers of Redis and PostgreSQL feeds, stopped and awaited on the way out, so their
            # connections are closed while the event loop still runs.
            followers = [
                runtime.keys.follow_revocations(runtime.redis),
                redis_link.follow_channel(
                    runtime.redis,
                    store_cache.CHANGED_CHANNEL,
                    on_message=lambda data: runtime.hook_stores.evict(data.decode()),
                    on_gap=runtime.hook_stores.evict,
                    what="store change",
                ),
                # Every process offers to relay member changes to Redis; one (holding the lock) does.
                change_feed.relay(runtime),
            ]
            for follower in followers:
                stack.push_async_callback(_stop, asyncio.create_task(follower))
            if settings.worker:
                await stack.enter_async_context(run_worker(runtime))
            yield

    return patron_lifespan  # type: ignore[return-value]
