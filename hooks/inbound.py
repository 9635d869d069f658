"""What a platform adapter translates one delivery into: canonical events with their dedupe keys."""

from __future__ import annotations

from typing import NamedTuple

from loyalty.events import Event, EventType


class Inbound(NamedTuple):
    """One canonical event a delivery stands for.

    `key` is the inbox key when the adapter derives it from the payload (WooCommerce: from the
    resource's state); empty when the route takes it from the platform's event id (Shopify).
    """

    event_type: EventType
    event: Event
    key: str = ""


class Ignored(NamedTuple):
    """A delivery that is understood and deliberately has no effect (a guest order, an unpaid one)."""

    reason: str
