"""Fan-out: each outbox row becomes one delivery per subscribed, enabled endpoint of its store.

Outbox rows are written by `loyalty.repository.outbox.emit` in the transaction of the change that
caused them. One worker at a time fans out (an advisory lock), in event_id order, so a member's
later event never has its delivery before an earlier one's: that is what per-member ordering
rests on. For one member, event_id order is the order the changes happened because those changes
lock the member's row before emitting, so they commit one after another. Events of different
members may commit out of event_id order; the `fanned_out_at IS NULL` marker (not a high-water
mark) makes sure a late committer is still picked up.

An endpoint added later does not receive events from before it existed; one that is disabled
receives no deliveries for events fanned out meanwhile.
"""

from __future__ import annotations

import logging
from datetime import datetime

from hooks.repository import Pool
from hooks.repository import deliveries as repo

log = logging.getLogger(__name__)

DELIVERIES_CHANNEL = "patron_deliveries"
"""Notified when fan-out created deliveries, so every worker's pump wakes to claim them."""


async def fan_out(pool: Pool, *, now: datetime | None = None, batch: int = 500) -> int:
    """Fan out every pending outbox row, batch by batch; returns the deliveries created."""
    created = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            await repo.lock_for_fan_out(conn)
            events, deliveries = await repo.fan_out(conn, now=now, limit=batch)
            if deliveries:
                await repo.notify(conn, channel=DELIVERIES_CHANNEL)
        created += deliveries
        if events < batch:
            return created
