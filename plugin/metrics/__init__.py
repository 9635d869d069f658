"""Prometheus metrics: requests per route, what Patron does, and gauges read from the database.

| module | what |
| --- | --- |
| `_requests.py` | the ASGI middleware timing every request under its route template |
| `_events.py` | counters incremented where things happen (webhooks, ledger, deliveries, care, caches) |
| `_scrape.py` | gauges that need a query (outbound backlog, care budgets, live models), per scrape |
| `_endpoint.py` | `GET /metrics`, summing every server process's samples in multiprocess mode |
| `_processes.py` | multiprocess mode for `patron serve --workers N`; the metrics port of `patron worker` |

The families and their labels are listed in the README ("Metrics"); `deploy/grafana/patron.json`
charts them, and a test checks that it asks only for families Patron exports.
"""

from plugin.metrics._endpoint import MULTIPROCESS_DIR, MetricsController, exposition, process_registry
from plugin.metrics._events import (
    care_scanned,
    delivery_settled,
    ledger_written,
    paid_orders_batched,
    profile_read,
    recommendations_read,
    webhook_received,
    webhook_rejected,
)
from plugin.metrics._processes import multiprocess_mode, worker_metrics
from plugin.metrics._requests import MetricsMiddleware
from plugin.metrics._scrape import database_gauges

__all__ = [
    "MULTIPROCESS_DIR",
    "MetricsController",
    "MetricsMiddleware",
    "care_scanned",
    "database_gauges",
    "delivery_settled",
    "exposition",
    "ledger_written",
    "multiprocess_mode",
    "paid_orders_batched",
    "process_registry",
    "profile_read",
    "recommendations_read",
    "webhook_received",
    "webhook_rejected",
    "worker_metrics",
]
