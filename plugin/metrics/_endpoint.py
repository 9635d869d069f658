"""`GET /metrics`: the process's (or all server processes') metrics, then the database gauges.

With several server processes (`patron serve --workers N`), each process writes its samples to
files under `PROMETHEUS_MULTIPROC_DIR` (prometheus_client's multiprocess mode, which `patron serve`
sets up) and whichever process answers the scrape sums them, so counts do not depend on which
process a scrape reaches. Without the variable, the answering process is the only one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from plugin.auth import EXCLUDE_FROM_AUTH
from plugin.metrics._scrape import database_gauges
from plugin.runtime import Runtime

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def process_registry() -> CollectorRegistry:
    """Every server process's metrics in multiprocess mode, else this process's."""
    if MULTIPROCESS_DIR not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class _Read(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def exposition(metrics: list[Metric]) -> bytes:
    """The process metrics and `metrics` (read for this scrape) in Prometheus text format."""
    scraped = CollectorRegistry()
    scraped.register(_Read(metrics))
    return generate_latest(process_registry()) + generate_latest(scraped)


class MetricsController(Controller):
    path = "/metrics"
    opt = {EXCLUDE_FROM_AUTH: True}  # noqa: RUF012
    include_in_schema = False

    @get()
    async def metrics(self, runtime: NamedDependency[Runtime]) -> Response[bytes]:
        """Prometheus text format."""
        body = exposition(await database_gauges(runtime))
        return Response(body, media_type=CONTENT_TYPE_LATEST)
