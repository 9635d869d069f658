"""Outbound webhook delivery as a worker pump, configured from the runtime's settings."""

from __future__ import annotations

import asyncio

from hooks.pump import DeliveryPump
from plugin.runtime import Runtime


async def deliver_outbox(runtime: Runtime, stop: asyncio.Event) -> None:
    """Fan out the outbox and deliver webhooks until `stop` is set (see hooks/pump.py)."""
    pump = DeliveryPump(
        runtime.pool,
        retry_schedule=runtime.settings.delivery_retry_schedule,
        allow_private=runtime.settings.allow_private_webhook_targets,
    )
    await pump.run(stop)
