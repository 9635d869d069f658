"""Shared pieces of the outbound delivery tests: a movable clock, endpoints, events, state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hooks import endpoints
from hooks.endpoints import WebhookEndpointCreate, WebhookEndpointCreated
from hooks.pump import DeliveryPump
from hooks.repository import deliveries as repo
from hooks.repository.deliveries import DeliveryRow
from loyalty.repository import outbox
from loyalty.stores import StoreCreated
from plugin.runtime import Runtime

SCHEDULE = (1, 2)
"""Three attempts: at once, after ~1 s, after ~2 s more (±10% jitter)."""


class Clock:
    """A clock the test moves; pumps read it instead of the database's."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_pump(runtime: Runtime, clock: Clock | None, **overrides: Any) -> DeliveryPump:
    options: dict[str, Any] = {
        "retry_schedule": SCHEDULE,
        "allow_private": True,
        "clock": clock,
        "timeout": 2.0,
        "lease_seconds": 30.0,
        "poll_seconds": 0.2,
        "grace_seconds": 0.5,
    } | overrides
    return DeliveryPump(runtime.pool, **options)


async def register(
    runtime: Runtime, store: StoreCreated, url: str, events: Sequence[str] = ("points.changed",)
) -> WebhookEndpointCreated:
    async with runtime.pool.acquire() as conn:
        return await endpoints.create(
            conn,
            store_id=store.store_id,
            data=WebhookEndpointCreate(url=url, events=list(events)),  # type: ignore[arg-type]
            allow_private=True,
        )


async def forget_endpoints(runtime: Runtime, store: StoreCreated) -> None:
    """Delete a store's endpoints (and so its deliveries): pumps claim across stores, and a later
    test's pump must not find this test's leftovers."""
    async with runtime.pool.acquire() as conn:
        await conn.execute("DELETE FROM webhook_endpoints WHERE store_id = $1", store.store_id)


async def emit(
    runtime: Runtime,
    store: StoreCreated,
    customer_id: str | None,
    seq: int,
    event_type: str = "points.changed",
) -> None:
    """One outbox event, committed on its own."""
    async with runtime.pool.acquire() as conn:
        await outbox.emit(
            conn, store_id=store.store_id, customer_id=customer_id, event_type=event_type, data={"seq": seq}
        )


async def deliveries_of(runtime: Runtime, store: StoreCreated) -> list[DeliveryRow]:
    """The store's deliveries, oldest first."""
    async with runtime.pool.acquire() as conn:
        rows = await repo.page(
            conn,
            store_id=store.store_id,
            status=None,
            endpoint_id=None,
            event_type=None,
            before=None,
            limit=1000,
        )
    return rows[::-1]


async def settle(
    pump: DeliveryPump,
    clock: Clock,
    runtime: Runtime,
    store: StoreCreated,
    *,
    rounds: int = 30,
    step: float = 3,
) -> int:
    """Run the pump, moving the clock past each retry, until nothing of the store is left to try;
    returns the rounds it took."""
    for round_ in range(1, rounds + 1):
        await pump.run_once()
        if all(row.status in ("delivered", "dead") for row in await deliveries_of(runtime, store)):
            return round_
        clock.advance(step)
    raise AssertionError(f"deliveries still pending after {rounds} rounds")


PumpFactory = Callable[..., DeliveryPump]
"""Makes pumps that the `pumps` fixture closes after the test."""
