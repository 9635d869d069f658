"""The worker runs its pumps beside the job queue: the outbox delivery pump among them."""

from __future__ import annotations

import asyncio

import msgspec

from loyalty.stores import StoreCreated
from plugin.lifespan import make_worker
from plugin.runtime import Runtime
from plugin.worker import Worker
from tests.hooks.outbound import emit, forget_endpoints, register
from tests.receiver import Receiver


async def test_a_pump_that_fails_is_restarted_and_all_stop_with_the_worker(runtime: Runtime) -> None:
    runs: list[str] = []
    restarted = asyncio.Event()

    async def flaky(_: Runtime, stop: asyncio.Event) -> None:
        runs.append("flaky")
        if len(runs) == 1:
            raise RuntimeError("first run fails")
        restarted.set()
        await stop.wait()

    stop = asyncio.Event()
    worker = Worker(runtime=runtime, handlers={}, pumps=[flaky], poll_seconds=0.05)
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(restarted.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert runs == ["flaky", "flaky"]


async def test_the_worker_delivers_the_outbox(runtime: Runtime, store: StoreCreated) -> None:
    settings = runtime.settings
    runtime.settings = msgspec.structs.replace(settings, allow_private_webhook_targets=True)
    stop = asyncio.Event()
    try:
        async with Receiver() as receiver:
            await register(runtime, store, receiver.url())
            task = asyncio.create_task(make_worker(runtime).run(stop))
            try:
                await emit(runtime, store, "c1", 1)
                await receiver.wait_for(lambda: len(receiver.answered(200)) == 1)
            finally:
                stop.set()
                await asyncio.wait_for(task, 15)
    finally:
        runtime.settings = settings
        await forget_endpoints(runtime, store)
