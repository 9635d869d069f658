"""Fixtures for outbound delivery tests: a moved clock, a real local receiver, pumps closed after."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hooks.pump import DeliveryPump
from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from tests.hooks.outbound import Clock, PumpFactory, forget_endpoints, make_pump
from tests.receiver import Receiver


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


@pytest.fixture
async def pumps(runtime: Runtime, clock: Clock, store: StoreCreated) -> AsyncIterator[PumpFactory]:
    made: list[DeliveryPump] = []

    def factory(**overrides: object) -> DeliveryPump:
        made.append(make_pump(runtime, clock, **overrides))
        return made[-1]

    yield factory
    for pump in made:
        await pump.aclose()
    await forget_endpoints(runtime, store)
