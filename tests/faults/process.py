"""`patron serve` as a process of its own (with its granian workers), to kill with SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from tests.bench.servers import HOST, ROOT, free_port, server_env

START_TIMEOUT = 90.0


@dataclass
class Served:
    process: asyncio.subprocess.Process
    url: str
    log: Path

    def kill(self) -> list[int]:
        """SIGKILL to the server and every process it started (its process group): no grace, no
        cleanup, as when a machine dies. Returns the pids killed."""
        pids = [self.process.pid] + [child.pid for child in psutil.Process(self.process.pid).children(True)]
        os.killpg(self.process.pid, signal.SIGKILL)
        return pids


def patron_env(urls: Mapping[str, str], *, admin_token: str) -> dict[str, str]:
    """What a production-like server needs: its worker on (it delivers the outbox), quick retries,
    and outbound webhooks allowed to the test's loopback receiver."""
    return server_env(urls, admin_token=admin_token) | {
        "PATRON_WORKER": "true",
        "PATRON_ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
        "PATRON_DELIVERY_RETRY_SCHEDULE": "1,1,2,5,10",
    }


async def _wait_healthy(served: Served) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with httpx.AsyncClient(base_url=served.url, timeout=2) as client:
        while time.monotonic() < deadline:
            if served.process.returncode is not None:
                raise RuntimeError(f"patron serve exited with {served.process.returncode}: see {served.log}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/health")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"patron serve not healthy within {START_TIMEOUT:.0f} s: see {served.log}")


@contextlib.asynccontextmanager
async def patron_serve(env: Mapping[str, str], log: Path) -> AsyncIterator[Served]:
    """`patron serve` on a free loopback port, in a process group of its own; yielded once healthy,
    killed (if still running) on exit."""
    port = free_port()
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "plugin.cli", "serve", "--host", HOST, "--port", str(port)),
            cwd=ROOT,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(process=process, url=f"http://{HOST}:{port}", log=log)
    try:
        await _wait_healthy(served)
        yield served
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
