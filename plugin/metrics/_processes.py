"""Metrics of processes that are not the one answering `/metrics`.

- `patron serve --workers N`: N server processes, and a scrape reaches one of them. In
  prometheus_client's multiprocess mode each process writes its samples to files in one directory
  and `/metrics` sums them (see `_endpoint.py`). The mode is chosen when a metric is created, so
  the variable must be set before the server processes import Patron: they are spawned (a fresh
  interpreter that inherits the environment), not forked from a parent whose metrics already exist.
- `patron worker`: no HTTP server of its own, so with `metrics_port` set it serves its counters
  (deliveries, care actions, expiry) on that port. The database gauges come from the API's `/metrics`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import disable_created_metrics, start_http_server

from plugin.metrics._endpoint import MULTIPROCESS_DIR, process_registry
from plugin.settings import Settings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def multiprocess_mode(workers: int) -> Iterator[None]:
    """Around starting `workers` server processes: multiprocess mode when there are several (or when
    `PROMETHEUS_MULTIPROC_DIR` is already set), in a directory emptied first and, if Patron made it,
    removed after."""
    given = os.environ.get(MULTIPROCESS_DIR)
    if workers == 1 and given is None:
        yield
        return
    directory = given or tempfile.mkdtemp(prefix="patron-metrics-")
    # Samples of an earlier run would be summed with this one's.
    for stale in Path(directory).glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_DIR] = directory
    multiprocessing.set_start_method("spawn", force=True)
    try:
        yield
    finally:
        if given is None:
            del os.environ[MULTIPROCESS_DIR]
            shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def worker_metrics(settings: Settings) -> Iterator[int | None]:
    """Serve this process's metrics on `settings.metrics_port` (if set) until exit; yields the port."""
    if settings.metrics_port is None:
        yield None
        return
    disable_created_metrics()  # type: ignore[no-untyped-call]  # as create_app does
    server, thread = start_http_server(settings.metrics_port, addr=settings.host, registry=process_registry())
    log.info("worker metrics on http://%s:%s/metrics", settings.host, settings.metrics_port)
    try:
        yield settings.metrics_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
