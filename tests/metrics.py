"""Reading `/metrics` in tests: samples by name and labels, and the names of every exported series."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


class Scrape:
    """One answer of `/metrics`, parsed."""

    def __init__(self, text: str) -> None:
        self.families = list(text_string_to_metric_families(text))
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in self.families
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels; 0 when absent (a series not counted yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def names(self) -> set[str]:
        """Every series name a query can ask for, from each family's type: even a family with no
        sample yet (a gauge of no store, a counter of nothing seen) is exported."""
        return {
            family.name + suffix for family in self.families for suffix in _SUFFIXES.get(family.type, ("",))
        }


async def scrape(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)
