"""Canonical inbound events: what every platform adapter translates its payloads into.

Amounts are integer minor units; times are aware datetimes. Unknown fields are tolerated (platforms
and shops add fields); missing required ones are not.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from loyalty.errors import InvalidInput, PatronError
from loyalty.limits import refuse_unstorable, refuse_unstorable_json

Id = Annotated[str, Meta(min_length=1, max_length=200)]
Amount = Annotated[int, Meta(ge=0, le=10**13)]
Name = Annotated[str, Meta(max_length=200)]


# gc=False on Structs of scalars only (no reference cycle can run through them): the garbage
# collector need not track them, and a backfill holds hundreds of thousands at a time.
class Customer(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    customer_id: Id
    email: Annotated[str, Meta(max_length=320)] | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    birthday: date | None = None
    marketing_consent: bool = False
    updated_at: datetime | None = None
    """The platform's own modification time: an older snapshot never overwrites a newer one."""


class OrderLine(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    line_id: Id
    product_id: Id | None = None
    sku: Name | None = None
    title: Annotated[str, Meta(max_length=500)] | None = None
    category: Name | None = None
    quantity: Annotated[int, Meta(gt=0, le=1_000_000)]
    unit_price: Amount
    discount: Amount = 0


class OrderPaid(msgspec.Struct, kw_only=True, frozen=True):
    order_id: Id
    customer: Customer
    currency: Annotated[str, Meta(pattern="^[A-Z]{3}$")]
    subtotal: Amount
    """The eligible amount: after discounts, before shipping, taxes and tips."""
    total: Amount
    placed_at: datetime
    lines: Annotated[list[OrderLine], Meta(max_length=5000)] = msgspec.field(default_factory=list)


class OrderCancelled(msgspec.Struct, kw_only=True, frozen=True):
    order_id: Id


class RefundLine(msgspec.Struct, kw_only=True, frozen=True):
    line_id: Id
    quantity: Annotated[int, Meta(gt=0, le=1_000_000)]


class OrderRefunded(msgspec.Struct, kw_only=True, frozen=True):
    order_id: Id
    refund_id: Id
    amount: Amount
    lines: list[RefundLine] = msgspec.field(default_factory=list)


class ProductUpserted(msgspec.Struct, kw_only=True, frozen=True):
    product_id: Id
    title: Annotated[str, Meta(max_length=500)] | None = None
    category: Name | None = None
    brand: Name | None = None
    price: Amount | None = None
    tags: Annotated[list[Name], Meta(max_length=100)] = msgspec.field(default_factory=list)
    consumable_days: Annotated[int, Meta(gt=0, le=3650)] | None = None
    active: bool = True
    updated_at: datetime | None = None


EventType = Literal[
    "customer.upserted", "order.paid", "order.cancelled", "order.refunded", "product.upserted"
]
Event = Customer | OrderPaid | OrderCancelled | OrderRefunded | ProductUpserted

EVENT_TYPES: dict[str, type[Event]] = {
    "customer.upserted": Customer,
    "order.paid": OrderPaid,
    "order.cancelled": OrderCancelled,
    "order.refunded": OrderRefunded,
    "product.upserted": ProductUpserted,
}


class Envelope(msgspec.Struct, kw_only=True, frozen=True):
    """The `standard` webhook body: `{"type": ..., "data": {...}}`."""

    type: str
    data: msgspec.Raw


class UnknownEventType(PatronError):
    status_code = 422
    code = "unknown-event-type"
    title = "Unknown event type"


class MalformedEvent(PatronError):
    status_code = 400
    code = "malformed"
    title = "Malformed request"


_envelope = msgspec.json.Decoder(Envelope)
_decoders = {name: msgspec.json.Decoder(kind) for name, kind in EVENT_TYPES.items()}


def validate(event: Any, raw: bytes | None = None) -> None:
    """Rules a Struct's field constraints cannot state; every adapter runs them on what it built.
    `raw`, the JSON the event was decoded from as it stands, spares walking every string of it."""
    if raw is None:
        refuse_unstorable(event, "data")
    else:
        refuse_unstorable_json(raw, event, "data")
    if isinstance(event, OrderPaid):
        line_ids = [line.line_id for line in event.lines]
        if len(set(line_ids)) != len(line_ids):
            raise InvalidInput("line ids must be unique within an order", field="data.lines")
    if isinstance(event, OrderRefunded):
        line_ids = [line.line_id for line in event.lines]
        if len(set(line_ids)) != len(line_ids):
            raise InvalidInput("line ids must be unique within a refund", field="data.lines")


def decode_envelope(body: bytes) -> tuple[str, Event]:
    """Parse a standard body; 400 if it is not JSON of the right shape, 422 if a field is wrong."""
    try:
        envelope = _envelope.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc), field="body") from None
    except msgspec.DecodeError as exc:
        raise MalformedEvent(f"the body is not valid JSON: {exc}") from None
    decoder = _decoders.get(envelope.type)
    if decoder is None:
        raise UnknownEventType(f"unknown event type {envelope.type!r}; known: {', '.join(EVENT_TYPES)}")
    try:
        event = decoder.decode(envelope.data)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        raise InvalidInput(message, field="data" + path.rstrip("`")) from None
    validate(event, body)
    return envelope.type, event
