"""Shopify webhooks: payloads (REST Admin API shapes) to canonical events. Pure: no I/O.

Each topic's body is decoded once into typed Structs that declare only what Patron reads, so
msgspec skips the rest of Shopify's large payloads without building them. Money is in the shop
currency as decimal strings ("19.99"); ids are numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
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
    RefundLine,
    validate,
)

SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
EVENT_ID_HEADER = "X-Shopify-Event-Id"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"

ShopifyId = int | Annotated[str, Meta(min_length=1, max_length=200)]
Currency = Annotated[str, Meta(pattern="^[A-Z]{3}$")]
Quantity = Annotated[int, Meta(ge=0, le=1_000_000)]


class _Consent(msgspec.Struct):
    state: str | None = None


class _Customer(msgspec.Struct, kw_only=True):
    id: ShopifyId
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    accepts_marketing: bool | None = None
    """Deprecated by Shopify in favour of `email_marketing_consent`; older API versions send only this."""
    email_marketing_consent: _Consent | None = None
    updated_at: datetime | None = None


class _Allocation(msgspec.Struct):
    amount: Decimal


class _LineItem(msgspec.Struct, kw_only=True):
    id: ShopifyId
    product_id: ShopifyId | None = None
    sku: str | None = None
    title: str | None = None
    name: str | None = None
    quantity: Quantity
    price: Decimal
    discount_allocations: list[_Allocation] = msgspec.field(default_factory=list)


class _Order(msgspec.Struct, kw_only=True):
    id: ShopifyId
    currency: Currency
    current_subtotal_price: Decimal | None = None
    subtotal_price: Decimal | None = None
    current_total_price: Decimal | None = None
    total_price: Decimal | None = None
    processed_at: datetime | None = None
    created_at: datetime | None = None
    financial_status: str | None = None
    customer: _Customer | None = None
    line_items: Annotated[list[_LineItem], Meta(max_length=5000)] = msgspec.field(default_factory=list)


class _RefundLineItem(msgspec.Struct, kw_only=True):
    line_item_id: ShopifyId
    quantity: Quantity
    subtotal: Decimal | None = None
    """The refunded lines' price after discounts, before tax: what `subtotal` (eligible spend) counts."""


class _Transaction(msgspec.Struct, kw_only=True):
    kind: str | None = None
    status: str | None = None
    amount: Decimal = Decimal(0)
    currency: Currency | None = None


class _Refund(msgspec.Struct, kw_only=True):
    id: ShopifyId
    order_id: ShopifyId
    refund_line_items: list[_RefundLineItem] = msgspec.field(default_factory=list)
    transactions: list[_Transaction] = msgspec.field(default_factory=list)


class _Variant(msgspec.Struct):
    price: Decimal | None = None


class _Product(msgspec.Struct, kw_only=True):
    id: ShopifyId
    title: str | None = None
    product_type: str | None = None
    vendor: str | None = None
    tags: str | list[str] | None = None
    """Comma-separated in REST payloads; a list in some newer API versions."""
    status: str | None = None
    variants: list[_Variant] = msgspec.field(default_factory=list)
    updated_at: datetime | None = None


def sign(secret: str, body: bytes) -> str:
    """The `X-Shopify-Hmac-Sha256` value Shopify sends with `body`."""
    return body_signature(secret.encode(), body)


def verify(secrets: list[str], *, body: bytes, signature: str | None) -> None:
    """Raise `InvalidSignature` unless `signature` is the body's HMAC under one of the store's secrets."""
    keys = [secret.encode() for secret in secrets]
    verify_body(keys, body=body, signature=signature, header=SIGNATURE_HEADER)


def inbox_key(headers: Mapping[str, str], body: bytes) -> tuple[str, str | None]:
    """(inbox key, delivery id) for a delivery.

    One merchant action emits several topics under one event id, so the topic is part of the key.
    Without the event id header the webhook id stands in (stable across Shopify's retries); without
    either, the body's hash does, so a retry of the same payload is still a duplicate.
    """
    topic = headers.get(TOPIC_HEADER) or ""
    webhook_id = headers.get(WEBHOOK_ID_HEADER) or None
    event_id = headers.get(EVENT_ID_HEADER) or webhook_id or "sha256-" + hashlib.sha256(body).hexdigest()
    return f"{event_id}:{topic}", webhook_id


def _text(value: str | None, limit: int = 200) -> str | None:
    """Shopify's free text, cut to what canonical events hold: a long name must not bounce the order."""
    value = (value or "").strip()
    return value[:limit] or None


def _email(value: str | None) -> str | None:
    value = (value or "").strip()
    return value if 0 < len(value) <= 320 else None


def _total(amounts: Iterable[int], *, field: str) -> int:
    total = sum(amounts)
    if total > MAX_AMOUNT:
        raise InvalidInput("the amounts add up to more than an order can hold", field=field)
    return total


def _customer(data: _Customer) -> Customer:
    consent = data.email_marketing_consent
    if consent is not None and consent.state is not None:
        marketing = consent.state == "subscribed"
    else:
        marketing = bool(data.accepts_marketing)
    return Customer(
        customer_id=str(data.id),
        email=_email(data.email),
        first_name=_text(data.first_name),
        last_name=_text(data.last_name),
        marketing_consent=marketing,
        updated_at=data.updated_at,
    )


def _order_paid(order: _Order) -> Inbound | Ignored:
    currency = order.currency
    # current_*: after order edits and refunds so far; absent from payloads of old API versions.
    subtotal = order.current_subtotal_price
    if subtotal is None:
        subtotal = order.subtotal_price
    total = order.current_total_price
    if total is None:
        total = order.total_price
    placed_at = order.processed_at or order.created_at
    if subtotal is None or placed_at is None:
        raise InvalidInput("an order needs subtotal_price and created_at", field="body")
    lines = []
    for index, item in enumerate(order.line_items):
        if item.quantity == 0:
            continue  # removed by an order edit: nothing was bought
        field = f"body.line_items[{index}]"
        lines.append(
            OrderLine(
                line_id=str(item.id),
                product_id=None if item.product_id is None else str(item.product_id),
                sku=_text(item.sku),
                title=_text(item.title or item.name, 500),
                quantity=item.quantity,
                unit_price=to_minor(item.price, currency, field=f"{field}.price"),
                discount=_total(
                    (
                        to_minor(allocation.amount, currency, field=f"{field}.discount_allocations")
                        for allocation in item.discount_allocations
                    ),
                    field=f"{field}.discount_allocations",
                ),
            )
        )
    if order.customer is None:
        # Checked last: a malformed order is refused (422) even without a customer.
        return Ignored(f"order {order.id} has no customer to credit")
    event = OrderPaid(
        order_id=str(order.id),
        customer=_customer(order.customer),
        currency=currency,
        subtotal=to_minor(subtotal, currency, field="body.subtotal_price"),
        total=to_minor(total if total is not None else subtotal, currency, field="body.total_price"),
        placed_at=placed_at,
        lines=lines,
    )
    return Inbound("order.paid", event)


# Cancelled before any money was taken: no orders/paid ever came, so there is nothing to reverse
# (and an order.cancelled would wait, parked, for an order that never arrives).
_NEVER_PAID = frozenset({"pending", "voided", "expired"})


def _order_cancelled(order: _Order) -> Inbound | Ignored:
    if order.financial_status in _NEVER_PAID:
        return Ignored(f"order {order.id} was cancelled unpaid ({order.financial_status})")
    return Inbound("order.cancelled", OrderCancelled(order_id=str(order.id)))


def _refund(refund: _Refund, currency: str) -> Inbound:
    quantities: dict[str, int] = {}
    for item in refund.refund_line_items:
        if item.quantity > 0:
            line_id = str(item.line_item_id)
            quantities[line_id] = quantities.get(line_id, 0) + item.quantity
    line_subtotals = [item.subtotal for item in refund.refund_line_items if item.subtotal is not None]
    if line_subtotals:
        # Refunded lines reduce eligible spend by their pre-tax price, as the order's subtotal counts it;
        # the transactions would also carry tax and shipping.
        amount = _total(
            (to_minor(value, currency, field="body.refund_line_items.subtotal") for value in line_subtotals),
            field="body.refund_line_items",
        )
        return Inbound("order.refunded", _refund_event(refund, amount, quantities))
    # No lines (a shipping or goodwill refund): what went back to the customer, the successful refund
    # transactions. Their currency only sets the minor digits: Shopify refunds in the order's currency.
    amount = _total(
        (
            to_minor(txn.amount, txn.currency or currency, field="body.transactions.amount")
            for txn in refund.transactions
            if txn.kind == "refund" and txn.status == "success"
        ),
        field="body.transactions",
    )
    return Inbound("order.refunded", _refund_event(refund, amount, quantities))


def _refund_event(refund: _Refund, amount: int, quantities: dict[str, int]) -> OrderRefunded:
    return OrderRefunded(
        order_id=str(refund.order_id),
        refund_id=str(refund.id),
        amount=amount,
        lines=[RefundLine(line_id=line_id, quantity=qty) for line_id, qty in quantities.items()],
    )


def _tags(tags: str | list[str] | None) -> list[str]:
    names = tags.split(",") if isinstance(tags, str) else (tags or [])
    return [tag for tag in (_text(name) for name in names) if tag][:100]


def _product(product: _Product, currency: str) -> Inbound:
    first = product.variants[0].price if product.variants else None
    event = ProductUpserted(
        product_id=str(product.id),
        title=_text(product.title, 500),
        category=_text(product.product_type),
        brand=_text(product.vendor),
        price=None if first is None else to_minor(first, currency, field="body.variants[0].price"),
        tags=_tags(product.tags),
        # Shopify sends no status before API 2020-10 (every product was active then).
        active=product.status in (None, "active"),
        updated_at=product.updated_at,
    )
    return Inbound("product.upserted", event)


_order = msgspec.json.Decoder(_Order)
_refund_decoder = msgspec.json.Decoder(_Refund)
_customer_decoder = msgspec.json.Decoder(_Customer)
_product_decoder = msgspec.json.Decoder(_Product)

TOPICS = frozenset(
    {
        "orders/paid",
        "orders/cancelled",
        "refunds/create",
        "customers/create",
        "customers/update",
        "products/create",
        "products/update",
    }
)
"""The topics Patron acts on; any other is acknowledged and ignored."""


def _decode(topic: str, body: bytes, currency: str) -> Inbound | Ignored:
    match topic:
        case "orders/paid":
            return _order_paid(_order.decode(body))
        case "orders/cancelled":
            return _order_cancelled(_order.decode(body))
        case "refunds/create":
            return _refund(_refund_decoder.decode(body), currency)
        case "customers/create" | "customers/update":
            return Inbound("customer.upserted", _customer(_customer_decoder.decode(body)))
        case "products/create" | "products/update":
            return _product(_product_decoder.decode(body), currency)
    return Ignored(f"topic {topic!r} is not one Patron acts on")


def translate(topic: str, body: bytes, *, store_currency: str) -> Inbound | Ignored:
    """The canonical event a delivery of `topic` stands for, or why it stands for none.

    400 when the body is not JSON, 422 when a field Patron needs is missing or wrong, naming it.
    `store_currency` prices products and refunds, whose payloads carry no currency of their own.
    """
    try:
        result = _decode(topic, body, store_currency)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        raise InvalidInput(message, field="body" + path.rstrip("`")) from None
    except msgspec.DecodeError as exc:
        raise MalformedEvent(f"the body is not valid JSON: {exc}") from None
    if isinstance(result, Inbound):
        validate(result.event)
    return result
