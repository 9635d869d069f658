"""Gauges that need the database, read when `/metrics` is scraped: never on the request path.

Three statements (plugin/repository/metrics.py), each over a partial index or one row per store,
on one pooled connection, within `TIMEOUT`. Every replica reports the same values (they are the
database's, not the process's), so dashboards take `max` across instances. If the database does
not answer in time the gauges are left out of that scrape and the process counters still go out.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client.core import GaugeMetricFamily, Metric

from plugin.repository import metrics as repo
from plugin.runtime import Runtime

log = logging.getLogger(__name__)

TIMEOUT = 5.0
"""Seconds the database gauges may take before a scrape goes out without them."""


async def database_gauges(runtime: Runtime) -> list[Metric]:
    """The outbound backlog and its lag, each store's care budget use, each store's live model."""
    now = runtime.clock()
    try:
        async with asyncio.timeout(TIMEOUT), runtime.pool.acquire() as conn:
            backlog = await repo.backlog(conn)
            budgets = await repo.budgets(conn, now=now)
            models = await repo.live_models(conn)
    except Exception:
        log.warning("metrics: the database gauges could not be read", exc_info=True)
        return []

    unfanned = GaugeMetricFamily(
        "patron_outbox_pending", "Outbox events not fanned out to deliveries yet", value=backlog.unfanned
    )
    waiting = GaugeMetricFamily(
        "patron_deliveries_waiting",
        "Deliveries waiting: pending (not tried yet) or failed (a retry scheduled)",
        labels=["status"],
    )
    waiting.add_metric(["pending"], backlog.pending)
    waiting.add_metric(["failed"], backlog.failed)
    lag = GaugeMetricFamily(
        "patron_outbox_lag_seconds",
        "Age of the oldest outbox event not yet fanned out or delivered to every endpoint (0: none)",
        value=0.0 if backlog.oldest is None else max(0.0, (now - backlog.oldest).total_seconds()),
    )

    budget = GaugeMetricFamily(
        "patron_care_gift_budget",
        "The live program's monthly gift budget, in the store's minor currency units",
        labels=["store"],
    )
    used = GaugeMetricFamily(
        "patron_care_gift_budget_used",
        "Gift budget used in the store-local month so far, in the store's minor currency units",
        labels=["store"],
    )
    for row in budgets:
        budget.add_metric([row.store_id], row.budget)
        used.add_metric([row.store_id], row.used)

    version = GaugeMetricFamily(
        "patron_model_version", "The recommender model version each store serves", labels=["store"]
    )
    age = GaugeMetricFamily(
        "patron_model_age_seconds", "Seconds since the served model was trained", labels=["store"]
    )
    for model in models:
        version.add_metric([model.store_id], model.version)
        age.add_metric([model.store_id], max(0.0, (now - model.trained_at).total_seconds()))
    return [unfanned, waiting, lag, budget, used, version, age]
