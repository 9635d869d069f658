"""The Grafana dashboard and the README's metrics table ask only for what Patron exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.metrics import scrape

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "patron.json"
METRIC_NAME = re.compile(r"\bpatron_[a-z0-9_]+")


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for item in items:
        yield item
        yield from panels(item.get("panels", []))


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in panels(dashboard["panels"]) for target in panel.get("targets", [])]


def balanced(expr: str) -> bool:
    closing = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in re.sub(r'"[^"]*"', '""', expr):  # brackets inside label values do not count
        if char in "([{":
            stack.append(char)
        elif char in closing and (not stack or stack.pop() != closing[char]):
            return False
    return not stack


async def test_every_query_asks_for_exported_series(
    client: httpx.AsyncClient, dashboard: dict[str, Any]
) -> None:
    exported = (await scrape(client)).names()
    queries = expressions(dashboard)
    assert len(queries) >= 20
    for expr in queries:
        asked = set(METRIC_NAME.findall(expr))
        assert asked, expr
        assert asked <= exported, f"{sorted(asked - exported)} in {expr}"
        assert balanced(expr), expr
    families = {
        "patron_request_duration_seconds_bucket",
        "patron_requests_error_total",
        "patron_webhooks_total",
        "patron_ledger_entries_total",
        "patron_outbox_pending",
        "patron_outbox_lag_seconds",
        "patron_deliveries_waiting",
        "patron_delivery_attempts_total",
        "patron_care_actions_total",
        "patron_care_gift_budget_used",
        "patron_model_age_seconds",
        "patron_model_version",
        "patron_cache_reads_total",
    }
    charted = {name for expr in queries for name in METRIC_NAME.findall(expr)}
    assert families <= charted


def test_the_data_source_is_a_variable(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    uids = {
        source["uid"]
        for panel in panels(dashboard["panels"])
        if panel["type"] != "row"
        for source in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
    }
    assert uids == {"${datasource}"}
    ids = [panel["id"] for panel in panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))


async def test_the_readme_lists_every_family(client: httpx.AsyncClient) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    documented = set(METRIC_NAME.findall(section))
    result = await scrape(client)
    exported = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in result.families
        if family.name.startswith("patron_")
    }
    assert documented == exported
