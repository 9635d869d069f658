"""WooCommerce webhooks: resource snapshots (REST API v3 shapes) to canonical events. Pure: no I/O.

WooCommerce builds each payload from the resource's state when it sends it, gives no event id
(`X-WC-Webhook-Delivery-ID` changes on every send) and never retries. So the events are derived
from the state, each under a key that names the fact, not the delivery:

| state seen | event | inbox key |
| --- | --- | --- |
| order paid (`processing`, `completed`, `refunded`, or paid then moved on) | order.paid | `order:{id}:paid` |
| each entry of the order's `refunds` | order.refunded | `order:{id}:refund:{refund_id}` |
| order `cancelled` after payment | order.cancelled | `order:{id}:cancelled` |
| customer | customer.upserted | `customer:{id}:{date_modified_gmt}` |
| product | product.upserted | `product:{id}:{date_modified_gmt}` |

An order announced `processing`, then `completed`, then with one refund more is paid once and
refunded once per refund: whatever was seen before is a duplicate in the inbox.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

import msgspec
from msgspec import Meta

from hooks.inbound import Ignored, Inbound
from hooks.money import MAX_AMOUNT, to_minor
from hooks.signing import body_signature, verify_body
from loyalty.errors import InvalidInput
from loyalty.events import (
    Customer,
    MalformedEvent,
    OrderCancelled,
    OrderLine,
    OrderPaid,
    OrderRefunded,
    ProductUpserted,
    validate,
)

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
TOPIC_HEADER = "X-WC-Webhook-Topic"
DELIVERY_ID_HEADER = "X-WC-Webhook-Delivery-ID"

ORDER_TOPICS = frozenset({"order.created", "order.updated", "order.restored"})
TOPICS = ORDER_TOPICS | {"customer.created", "customer.updated", "product.created", "product.updated"}
"""The topics Patron acts on; any other is acknowledged and ignored."""

# Shops may be set to more price decimals than the currency has; WooCommerce rounds such
# amounts half away from zero (PHP's round()) when it totals them, and so does Patron.
_ROUNDING = ROUND_HALF_UP

Currency = Annotated[str, Meta(pattern="^[A-Z]{3}$")]
Quantity = Annotated[int, Meta(ge=0, le=1_000_000)]
WooId = Annotated[int, Meta(ge=0)]


class _Billing(msgspec.Struct):
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class _Line(msgspec.Struct, kw_only=True):
    id: WooId
    name: str | None = None
    product_id: WooId | None = None
    sku: str | None = None
    quantity: Quantity
    subtotal: Decimal
    """The line before discounts, taxes excluded."""
    total: Decimal
    """The line after discounts, taxes excluded."""


class _Refund(msgspec.Struct, kw_only=True):
    id: WooId
    total: Decimal
    """Negative: "-10.00" for a refund of 10."""


class WooOrder(msgspec.Struct, kw_only=True):
    """The part of a WooCommerce order (webhook payload or REST API v3 resource) Patron reads."""

    id: WooId
    status: str
    currency: Currency
    total: Decimal
    customer_id: WooId = 0
    """0 for a guest checkout."""
    billing: _Billing | None = None
    date_created_gmt: datetime | None = None
    date_paid_gmt: datetime | None = None
    line_items: Annotated[list[_Line], Meta(max_length=5000)] = msgspec.field(default_factory=list)
    refunds: list[_Refund] = msgspec.field(default_factory=list)


class _Customer(msgspec.Struct, kw_only=True):
    id: WooId
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    date_modified_gmt: datetime | None = None


class _Term(msgspec.Struct):
    name: str


class _Product(msgspec.Struct, kw_only=True):
    id: WooId
    name: str | None = None
    status: str | None = None
    price: str | None = None
    """A decimal string, or "" for a product without a price (a variable product's parent)."""
    categories: list[_Term] = msgspec.field(default_factory=list)
    tags: list[_Term] = msgspec.field(default_factory=list)
    brands: list[_Term] = msgspec.field(default_factory=list)
    """WooCommerce 9.6+ (the brands taxonomy); absent before."""
    date_modified_gmt: datetime | None = None


# wp_specialchars_decode($secret, ENT_QUOTES): exactly these entities, in one pass (strtr), so
# "&amp;lt;" gives "&lt;". html.unescape would decode far more ("&copy", "&lt" without ";"),
# which a generated secret can contain by chance, and then sign with a different key.
_WP_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#0*(39|34|60|62|38)|#[xX]0*(27|22|26));")
_WP_CHARS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "39": "'", "34": '"', "60": "<", "62": ">"}
_WP_CHARS |= {"38": "&", "27": "'", "22": '"', "26": "&"}


def secret_key(secret: str) -> bytes:
    """The HMAC key WooCommerce signs with: its stored secret, HTML-entity-decoded as WordPress does."""
    return _WP_ENTITY.sub(lambda match: _WP_CHARS[next(g for g in match.groups() if g)], secret).encode()


def sign(secret: str, body: bytes) -> str:
    """The `X-WC-Webhook-Signature` value WooCommerce sends with `body`."""
    return body_signature(secret_key(secret), body)


def verify(secrets: list[str], *, body: bytes, signature: str | None) -> None:
    """Raise `InvalidSignature` unless `signature` is the body's HMAC under one of the store's secrets."""
    keys = [secret_key(secret) for secret in secrets]
    verify_body(keys, body=body, signature=signature, header=SIGNATURE_HEADER)


_PING = re.compile(rb"webhook_id=\d+")


def is_ping(headers: Mapping[str, str], body: bytes) -> bool:
    """WooCommerce's check when a webhook is saved: a form body `webhook_id=N`, unsigned, no topic.

    It must be answered 200 or WooCommerce will not activate the webhook.
    """
    return SIGNATURE_HEADER not in headers and TOPIC_HEADER not in headers and bool(_PING.fullmatch(body))


def _utc(moment: datetime | None) -> datetime | None:
    """WooCommerce's `*_gmt` fields carry no offset: they are UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _text(value: str | None, limit: int = 200) -> str | None:
    """WooCommerce's display text (HTML-escaped: "Food &amp; Drink"), cut to what events hold."""
    value = html.unescape(value or "").strip()
    return value[:limit] or None


def _money(value: Decimal, currency: str, field: str) -> int:
    return to_minor(value, currency, field=field, rounding=_ROUNDING)


def _line(line: _Line, currency: str, index: int) -> OrderLine:
    field = f"body.line_items[{index}]"
    before = _money(line.subtotal, currency, f"{field}.subtotal")
    after = _money(line.total, currency, f"{field}.total")
    # WooCommerce gives line amounts, not unit prices: a unit price rounded up, and the discount
    # taking up the difference, make quantity x unit price - discount equal the line exactly.
    unit_price = -(-max(before, after) // line.quantity)
    return OrderLine(
        line_id=str(line.id),
        product_id=str(line.product_id) if line.product_id else None,
        sku=_text(line.sku),
        title=_text(line.name, 500),
        quantity=line.quantity,
        unit_price=unit_price,
        discount=unit_price * line.quantity - after,
    )


def _order_paid(order: WooOrder) -> OrderPaid:
    placed_at = _utc(order.date_paid_gmt or order.date_created_gmt)
    if placed_at is None:
        raise InvalidInput("an order needs date_paid_gmt or date_created_gmt", field="body.date_created_gmt")
    currency = order.currency
    lines = [_line(line, currency, index) for index, line in enumerate(order.line_items) if line.quantity > 0]
    # The eligible amount: the lines after discounts, before shipping, fees and taxes.
    subtotal = sum(line.unit_price * line.quantity - line.discount for line in lines)
    if subtotal > MAX_AMOUNT:
        raise InvalidInput("the lines add up to more than an order can hold", field="body.line_items")
    billing = order.billing or _Billing()
    email = (billing.email or "").strip()
    customer = Customer(
        customer_id=str(order.customer_id),
        email=email if 0 < len(email) <= 320 else None,
        first_name=_text(billing.first_name),
        last_name=_text(billing.last_name),
    )
    return OrderPaid(
        order_id=str(order.id),
        customer=customer,
        currency=currency,
        subtotal=subtotal,
        total=_money(order.total, currency, "body.total"),
        placed_at=placed_at,
        lines=lines,
    )


_PAID = frozenset({"processing", "completed", "refunded"})
# Statuses before payment, or out of play: their date_paid_gmt (rarely set) says nothing lasting.
_UNPAID = frozenset({"pending", "on-hold", "failed", "checkout-draft", "draft", "auto-draft", "trash"})


def order_events(order: WooOrder) -> list[Inbound] | Ignored:
    """Every event an order snapshot implies, oldest first, each keyed by the fact it records.

    Paid when its status says so, or when it was paid and has moved on (cancelled, a shop's own
    status); then one refund per entry of `refunds`; then the cancellation. A guest order (no
    customer account) has no member to credit.
    """
    paid = order.status in _PAID or (order.date_paid_gmt is not None and order.status not in _UNPAID)
    if not paid:
        return Ignored(f"order {order.id} is {order.status}: not paid")
    if not order.customer_id:
        return Ignored(f"order {order.id} is a guest order: no customer account to credit")
    order_id = str(order.id)
    paid_event = _order_paid(order)
    events = [Inbound("order.paid", paid_event, f"order:{order_id}:paid")]
    # By id, so concurrent deliveries of one order take the inbox keys in the same order.
    refunds = sorted(enumerate(order.refunds), key=lambda pair: pair[1].id)
    for index, refund in refunds:
        amount = _money(abs(refund.total), order.currency, f"body.refunds[{index}].total")
        event = OrderRefunded(order_id=order_id, refund_id=str(refund.id), amount=amount)
        events.append(Inbound("order.refunded", event, f"order:{order_id}:refund:{refund.id}"))
    if order.status == "refunded" and not refunds:
        # Refunded with no refund listed (status set by hand): the whole order went back.
        full = OrderRefunded(order_id=order_id, refund_id="status-refunded", amount=paid_event.total)
        events.append(Inbound("order.refunded", full, f"order:{order_id}:refund:status-refunded"))
    if order.status == "cancelled":
        cancelled = OrderCancelled(order_id=order_id)
        events.append(Inbound("order.cancelled", cancelled, f"order:{order_id}:cancelled"))
    for inbound in events:
        validate(inbound.event)
    return events


def _stamp(moment: datetime | None, body: bytes) -> str:
    """What tells two snapshots of a resource apart: its modification time, else its content."""
    stamped = _utc(moment)
    return stamped.isoformat() if stamped else "sha256-" + hashlib.sha256(body).hexdigest()


def _customer(customer: _Customer, body: bytes) -> list[Inbound]:
    email = (customer.email or "").strip()
    event = Customer(
        customer_id=str(customer.id),
        email=email if 0 < len(email) <= 320 else None,
        first_name=_text(customer.first_name),
        last_name=_text(customer.last_name),
        updated_at=_utc(customer.date_modified_gmt),
    )
    key = f"customer:{customer.id}:{_stamp(customer.date_modified_gmt, body)}"
    return [Inbound("customer.upserted", event, key)]


def _product(product: _Product, body: bytes, currency: str) -> list[Inbound]:
    price = (product.price or "").strip()
    event = ProductUpserted(
        product_id=str(product.id),
        title=_text(product.name, 500),
        category=_text(product.categories[0].name) if product.categories else None,
        brand=_text(product.brands[0].name) if product.brands else None,
        price=to_minor(price, currency, field="body.price", rounding=_ROUNDING) if price else None,
        tags=[tag for tag in (_text(term.name) for term in product.tags[:100]) if tag],
        active=product.status in (None, "publish"),
        updated_at=_utc(product.date_modified_gmt),
    )
    key = f"product:{product.id}:{_stamp(product.date_modified_gmt, body)}"
    return [Inbound("product.upserted", event, key)]


_order_decoder = msgspec.json.Decoder(WooOrder)
_customer_decoder = msgspec.json.Decoder(_Customer)
_product_decoder = msgspec.json.Decoder(_Product)


def _decode(topic: str, body: bytes, currency: str) -> list[Inbound] | Ignored:
    if topic in ORDER_TOPICS:
        return order_events(_order_decoder.decode(body))
    if topic in ("customer.created", "customer.updated"):
        return _customer(_customer_decoder.decode(body), body)
    if topic in ("product.created", "product.updated"):
        return _product(_product_decoder.decode(body), body, currency)
    return Ignored(f"topic {topic!r} is not one Patron acts on")


def _invalid(exc: msgspec.ValidationError) -> InvalidInput:
    message, _, path = str(exc).partition(" - at `$")
    return InvalidInput(message, field="body" + path.rstrip("`"))


def translate(topic: str, body: bytes, *, store_currency: str) -> list[Inbound] | Ignored:
    """The canonical events a delivery of `topic` stands for, or why it stands for none.

    400 when the body is not JSON, 422 when a field Patron needs is missing or wrong, naming it.
    `store_currency` prices products, whose payloads carry no currency of their own.
    """
    try:
        result = _decode(topic, body, store_currency)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    except msgspec.DecodeError as exc:
        raise MalformedEvent(f"the body is not valid JSON: {exc}") from None
    if not isinstance(result, Ignored):
        for inbound in result:
            validate(inbound.event)
    return result


def decode_order(body: bytes | msgspec.Raw) -> WooOrder:
    """One order from `GET /wp-json/wc/v3/orders`, read as the webhook's order snapshot."""
    try:
        return _order_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    except msgspec.DecodeError as exc:
        raise MalformedEvent(f"the order is not valid JSON: {exc}") from None
