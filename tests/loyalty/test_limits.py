"""What Patron refuses beyond field constraints: the walk over a decoded value, and its shortcut
for values just decoded from JSON, which must refuse exactly what the walk refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.errors import InvalidInput
from loyalty.events import Customer, OrderPaid, ProductUpserted
from loyalty.limits import refuse_unstorable, refuse_unstorable_json
from tests.events import make_customer, make_line, make_order


def outcome(check: Any, *args: Any) -> tuple[str, str] | None:
    try:
        check(*args)
    except InvalidInput as exc:
        return exc.detail, str(exc.extra.get("field"))
    return None


def both(kind: type, data: dict[str, Any]) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    raw = msgspec.json.encode(data)
    value = msgspec.json.decode(raw, type=kind)
    return outcome(refuse_unstorable, value, "data"), outcome(refuse_unstorable_json, raw, value, "data")


@pytest.mark.parametrize(
    ("kind", "data", "refused"),
    [
        (OrderPaid, make_order(), None),
        (OrderPaid, make_order(lines=[make_line(), make_line(title="a\x00b")]), "data.lines[1].title"),
        (OrderPaid, make_order(customer=make_customer(email="\x00")), "data.customer.email"),
        (OrderPaid, make_order(lines=[make_line(title="a\\u0000b")]), None),  # a backslash, no NUL
        (OrderPaid, make_order(placed_at="2100-01-01T00:00:00Z"), "data.placed_at"),
        (OrderPaid, make_order(placed_at="1969-12-31T23:59:59Z"), "data.placed_at"),
        (OrderPaid, make_order(placed_at="2026-01-01T10:00:00"), "data.placed_at"),
        (OrderPaid, make_order(customer=make_customer(birthday="1899-12-31")), "data.customer.birthday"),
        (Customer, make_customer(updated_at="2026-01-01T10:00:00"), "data.updated_at"),
        (ProductUpserted, {"product_id": "p", "tags": ["ok", "n\x00"]}, "data.tags[1]"),
        (ProductUpserted, {"product_id": "p", "updated_at": "2200-01-01T00:00:00Z"}, "data.updated_at"),
    ],
)
def test_the_json_shortcut_refuses_what_the_walk_refuses(
    kind: type, data: dict[str, Any], refused: str | None
) -> None:
    walked, shortcut = both(kind, data)
    assert shortcut == walked
    assert (walked[1] if walked else None) == refused


@given(
    title=st.text(max_size=100),
    email=st.text(max_size=50),
    placed_at=st.datetimes(
        min_value=datetime(1960, 1, 1), max_value=datetime(2110, 1, 1), timezones=st.just(UTC)
    ),
)
def test_the_json_shortcut_agrees_with_the_walk(title: str, email: str, placed_at: datetime) -> None:
    data = make_order(
        customer=make_customer(email=email),
        lines=[make_line(title=title)],
        placed_at=placed_at.isoformat(),
    )
    walked, shortcut = both(OrderPaid, data)
    assert shortcut == walked
