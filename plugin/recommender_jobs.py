"""The worker's model refresh: `patron train` in a child process, so that neither the API process nor
the worker ever holds a model (or LightFM) in memory."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import timedelta

from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from plugin.worker import Schedule

log = logging.getLogger(__name__)

REFRESH = "recommender.refresh"
SCHEDULE = Schedule(kind=REFRESH, every=timedelta(days=1))


async def refresh(runtime: Runtime, job: Job) -> None:
    """Train every store (or the job's store), precompute and publish; raises if training failed."""
    from plugin.cli import settings_env  # the CLI imports the worker: import it only when running

    command = [sys.executable, "-m", "plugin.cli", "train"]
    if job.store_id:
        command += ["--store", job.store_id]
    process = await asyncio.create_subprocess_exec(
        *command,
        # Precompute parallelises over chunks of members itself; BLAS threads on top would
        # oversubscribe the cores (measured: a third fewer members per CPU-second).
        env={"OPENBLAS_NUM_THREADS": "1", **os.environ, **settings_env(runtime.settings)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await process.communicate()
    except asyncio.CancelledError:
        # The worker is stopping (or the lease was lost): the training must not outlive it, holding
        # the embedded servers and a pooled connection. The job is retried by whoever claims it next.
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"patron train exited {process.returncode}: {stderr.decode()[-1000:]}")
    log.info("recommender refreshed: %s", stdout.decode().strip()[-1000:])
