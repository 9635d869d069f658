"""Schemathesis over the whole OpenAPI document (see tests/fuzzing.py): a short run by default,
a long one with `make test-fuzz`."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar

from tests.fuzzing import run_fuzz

FAILURES_SHOWN = 50


async def fuzz_and_report(
    client: httpx.AsyncClient, app: Litestar, *, max_examples: int, derandomize: bool
) -> None:
    report = await run_fuzz(client, app, max_examples=max_examples, derandomize=derandomize)
    print("\nschemathesis:", report.summary())
    slowest = sorted(report.seconds.items(), key=lambda item: -item[1])[:5]
    print("slowest:", ", ".join(f"{label} {seconds:.1f}s" for label, seconds in slowest))
    assert len(report.operations) >= 46, report.operations
    assert set(report.cases) == set(report.operations), report.summary()
    assert not report.failures, "\n\n".join(failure[:2500] for failure in report.failures[:FAILURES_SHOWN])


async def test_every_operation_keeps_its_documented_promises(
    client: httpx.AsyncClient, app: Litestar
) -> None:
    await fuzz_and_report(client, app, max_examples=3, derandomize=True)


@pytest.mark.fuzz
async def test_every_operation_keeps_its_documented_promises_at_length(
    client: httpx.AsyncClient, app: Litestar
) -> None:
    await fuzz_and_report(client, app, max_examples=40, derandomize=False)
