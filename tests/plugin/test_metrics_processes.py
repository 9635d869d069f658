"""Metrics across processes: `patron serve --workers 2` counts every request whichever process a scrape
reaches; `patron worker` serves its counters on `metrics_port`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx

from plugin import metrics
from plugin.settings import Settings
from tests.bench.servers import ROOT, free_port, server_env
from tests.conftest import ADMIN_TOKEN
from tests.metrics import Scrape

HEALTH_OK = {"method": "GET", "path": "/health", "status_code": "200", "app_name": "patron"}


def pids_with_counters(directory: Path) -> set[str]:
    return {path.stem.rpartition("_")[2] for path in directory.glob("counter_*.db")}


async def test_serve_with_two_processes_sums_their_counts(settings: Settings, tmp_path: Path) -> None:
    assert settings.database_url is not None
    assert settings.redis_url is not None
    port = free_port()
    urls = {"database": settings.database_url, "redis": settings.redis_url}
    env = server_env(urls, admin_token=ADMIN_TOKEN)
    # Given, so the test can see the files; a leftover from an earlier run must not be counted.
    env[metrics.MULTIPROCESS_DIR] = str(tmp_path)
    (tmp_path / "counter_1.db").write_bytes(b"left over")
    command = [sys.executable, "-m", "plugin.cli", "serve", "--port", str(port), "--workers", "2"]
    log = (tmp_path / "serve.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        *command, "--no-worker", cwd=ROOT, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
    )
    try:
        answered = 0
        # No keep-alive: a new connection for each request, which the kernel spreads over both processes.
        fresh = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5, limits=fresh) as client:
            async with asyncio.timeout(90):
                while not answered:
                    try:
                        answered += (await client.get("/health")).status_code == 200
                    except httpx.TransportError:
                        await asyncio.sleep(0.2)
            for _ in range(20):
                answered += (await client.get("/health")).status_code == 200
            scrapes = [Scrape((await client.get("/metrics")).text) for _ in range(6)]
    finally:
        process.terminate()
        await process.wait()
        log.close()
    assert answered == 21
    assert {scrape.value("patron_requests_total", **HEALTH_OK) for scrape in scrapes} == {21}
    pids = pids_with_counters(tmp_path)
    assert len(pids) >= 2, (tmp_path / "serve.log").read_text()
    assert "1" not in pids


async def test_the_worker_serves_its_counters_on_the_metrics_port(settings: Settings) -> None:
    port = free_port()
    worker = Settings(host="127.0.0.1", metrics_port=port)
    with metrics.worker_metrics(worker) as serving:
        assert serving == port
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    scrape = Scrape(response.text)
    assert {"patron_delivery_attempts_total", "patron_ledger_entries_total"} <= scrape.names()
    with metrics.worker_metrics(settings) as serving:
        assert serving is None  # no port set: nothing served
