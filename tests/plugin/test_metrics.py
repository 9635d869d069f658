"""Request metrics: counted per route template, method and status, server errors apart."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from plugin.metrics import MetricsMiddleware


@get("/things/{thing_id:int}", sync_to_thread=False)
def thing(thing_id: FromPath[int]) -> dict[str, int]:
    if thing_id == 0:
        raise RuntimeError("boom")
    return {"id": thing_id}


def _sample(name: str, status: int) -> float:
    labels = {
        "method": "GET",
        "path": "/things/{thing_id}",
        "status_code": str(status),
        "app_name": "patron",
    }
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_counts_by_route_template_and_status() -> None:
    before_ok, before_error = (
        _sample("patron_requests_total", 200),
        _sample("patron_requests_error_total", 500),
    )
    app = Litestar([thing], middleware=[MetricsMiddleware])
    async with AsyncTestClient(app) as client:
        for thing_id in (1, 2, 0):
            await client.get(f"/things/{thing_id}")
    assert _sample("patron_requests_total", 200) == before_ok + 2
    assert _sample("patron_requests_total", 500) >= 1
    assert _sample("patron_requests_error_total", 500) == before_error + 1
    assert _sample("patron_request_duration_seconds_count", 200) == before_ok + 2
