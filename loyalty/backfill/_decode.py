"""One line of a backfill file as its canonical event, or BadLine naming the line."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from loyalty.errors import InvalidInput
from loyalty.events import Customer, OrderCancelled, OrderPaid, OrderRefunded, ProductUpserted, validate


class BadLine(InvalidInput):
    """A line of the file that cannot be loaded; the load is aborted and nothing is written."""

    code = "backfill-bad-line"
    title = "Bad backfill line"

    def __init__(self, line_no: int | None, detail: str) -> None:
        where = f"line {line_no}" if line_no is not None else "a parked event"
        super().__init__(f"{where}: {detail}", line=line_no)
        self.line_no = line_no


class _Customer(msgspec.Struct, frozen=True, tag_field="type", tag="customer.upserted"):
    data: Customer


class _Product(msgspec.Struct, frozen=True, tag_field="type", tag="product.upserted"):
    data: ProductUpserted


class _Paid(msgspec.Struct, frozen=True, tag_field="type", tag="order.paid"):
    data: OrderPaid


class _Refunded(msgspec.Struct, frozen=True, tag_field="type", tag="order.refunded"):
    data: OrderRefunded


class _Cancelled(msgspec.Struct, frozen=True, tag_field="type", tag="order.cancelled"):
    data: OrderCancelled


BackfillEvent = Customer | ProductUpserted | OrderPaid | OrderRefunded | OrderCancelled
OrderEvent = OrderPaid | OrderRefunded | OrderCancelled
# The envelope's `type` picks the Struct: one decoding pass per line, no intermediate Raw.
_decoder = msgspec.json.Decoder(_Customer | _Product | _Paid | _Refunded | _Cancelled)


def decode_line(raw: bytes, line_no: int) -> BackfillEvent:
    """One `{"type": ..., "data": ...}` line as its canonical event, checked as the webhook checks it."""
    try:
        event: BackfillEvent = _decoder.decode(raw).data
        validate(event, raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadLine(line_no, str(exc)) from None
    except InvalidInput as exc:
        raise BadLine(line_no, f"{exc.detail} (at {exc.extra.get('field')})") from None
    return event


def shifted(event: BackfillEvent, shift: timedelta) -> BackfillEvent:
    """The event moved in time (the demo moves old history up to today)."""
    if isinstance(event, OrderPaid):
        customer = shifted(event.customer, shift)
        return msgspec.structs.replace(event, placed_at=event.placed_at + shift, customer=customer)
    if isinstance(event, Customer | ProductUpserted) and event.updated_at is not None:
        return msgspec.structs.replace(event, updated_at=event.updated_at + shift)
    return event


def event_type(event: OrderRefunded | OrderCancelled) -> str:
    return "order.refunded" if isinstance(event, OrderRefunded) else "order.cancelled"
