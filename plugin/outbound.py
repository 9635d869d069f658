"""Outbound webhook delivery as a worker pump, configured from the runtime's settings."""

from __future__ import annotations

import asyncio
from typing import Any

from hooks.pump import DeliveryPump
from plugin import metrics
from plugin.runtime import Runtime


def delivery_pump(runtime: Runtime, **options: Any) -> DeliveryPump:
    """A pump configured from the runtime's settings (`options` override), its attempts counted."""
    settings = runtime.settings
    configured: dict[str, Any] = {
        "retry_schedule": settings.delivery_retry_schedule,
        "allow_private": settings.allow_private_webhook_targets,
        "observe": metrics.delivery_settled,
    }
    return DeliveryPump(runtime.pool, **(configured | options))


async def deliver_outbox(runtime: Runtime, stop: asyncio.Event) -> None:
    """Fan out the outbox and deliver webhooks until `stop` is set (see hooks/pump.py)."""
    await delivery_pump(runtime).run(stop)
