"""Operations and a reference model of the ledger, for tests/loyalty/test_ledger_properties.py.

The model keeps each member's balance and lots the way the ledger is specified: points earned
as lots (a debt paid from the new lot first), spending nearest-expiry-first with a reversal's own
order first, reversals in proportion with the remainder on the refund that completes the order,
expiry of due lots. With the default program: 1 point per EUR, no multipliers, 365-day expiry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

START = datetime(2027, 1, 1, tzinfo=UTC)
COSTS = {"voucher-5": 500, "voucher-10": 950}


# --- Operations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pay:
    member: int
    lines: list[tuple[int, int]]  # (unit price, quantity)
    age_days: int
    refund_first_pct: int | None = None  # a refund of this share sent before the order: parked


@dataclass(frozen=True)
class Refund:
    pick: int
    mode: str  # "amount", "rest" or "lines"
    pct: int
    quantities: list[int]


@dataclass(frozen=True)
class Cancel:
    pick: int


@dataclass(frozen=True)
class Redeliver:
    pick: int
    same_id: bool


@dataclass(frozen=True)
class Redeem:
    member: int
    reward_id: str


@dataclass(frozen=True)
class ReplayRedemption:
    pick: int


@dataclass(frozen=True)
class Adjust:
    member: int
    points: int


@dataclass(frozen=True)
class Expire:
    days: int


members = st.integers(0, 1)
lines = st.lists(st.tuples(st.integers(1, 1500), st.integers(1, 3)), min_size=1, max_size=2)
picks = st.integers(0, 1000)
# Mostly no early refund; otherwise a share of the order refunded before it arrives.
early_refunds = st.sampled_from([None, None, None, 30, 50, 100])


def pays(member: st.SearchStrategy[int]) -> st.SearchStrategy[Pay]:
    return st.builds(Pay, member, lines, st.integers(0, 400), early_refunds)


operations = st.lists(
    st.one_of(
        pays(members),
        st.builds(
            Refund,
            picks,
            st.sampled_from(["amount", "rest", "lines"]),
            st.integers(1, 99),
            st.lists(st.integers(0, 3), min_size=2, max_size=2),
        ),
        st.builds(Cancel, picks),
        st.builds(Redeliver, picks, st.booleans()),
        st.builds(Redeem, members, st.sampled_from(sorted(COSTS))),
        st.builds(ReplayRedemption, picks),
        # Orders earn little (under 1 point per EUR of 450 EUR at most); adjustments give the
        # points that redemptions spend, and take some back.
        st.builds(Adjust, members, st.integers(300, 1500) | st.integers(-600, -1)),
        st.builds(Expire, st.integers(1, 400)),
    ),
    min_size=4,
    max_size=30,
)
# Both members exist from the start with points to spend, so writes for them do something.
histories = st.tuples(
    pays(st.just(0)),
    pays(st.just(1)),
    st.builds(Adjust, st.just(0), st.integers(300, 1500)),
    st.builds(Adjust, st.just(1), st.integers(300, 1500)),
    operations,
).map(lambda t: [*t[:4], *t[4]])


# --- The reference model ---------------------------------------------------------------------


@dataclass
class Lot:
    points: int
    remaining: int
    expires_at: datetime
    order_id: str | None


@dataclass
class Order:
    order_id: str
    member: int
    lines: list[dict[str, Any]]
    subtotal: int
    points: int
    refunded: int = 0
    reversed: int = 0
    cancelled: bool = False
    refunded_qty: dict[str, int] = field(default_factory=dict)
    refund_ids: set[str] = field(default_factory=set)


@dataclass
class Model:
    now: datetime = START
    balances: dict[int, int] = field(default_factory=dict)
    lots: dict[int, list[Lot]] = field(default_factory=lambda: {0: [], 1: []})
    orders: dict[str, Order] = field(default_factory=dict)
    spend: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0})

    def open_points(self, member: int) -> int:
        return sum(lot.remaining for lot in self.lots[member])

    def earn(self, member: int, points: int, expires_at: datetime, order_id: str | None) -> None:
        before = self.balances[member]
        lot = Lot(points, points, expires_at, order_id)
        lot.remaining -= min(points, max(-before, 0))  # a debt is paid from the new lot first
        self.lots[member].append(lot)
        self.balances[member] = before + points

    def debit(self, member: int, points: int, order_first: str | None = None) -> None:
        order = sorted(
            (lot for lot in self.lots[member] if lot.remaining),
            key=lambda lot: (not (order_first and lot.order_id == order_first), lot.expires_at),
        )  # sorted() is stable: equal keys keep creation (lot id) order
        left = points
        for lot in order:
            take = min(lot.remaining, left)
            lot.remaining -= take
            left -= take
        self.balances[member] -= points  # what no lot covered stays as a debt

    def refund(self, order: Order, refund_id: str, amount: int, quantities: dict[str, int]) -> None:
        if refund_id in order.refund_ids:
            return
        order.refund_ids.add(refund_id)
        if order.cancelled:
            return
        for line in order.lines:
            quantity = quantities.get(line["line_id"], 0)
            line_id = line["line_id"]
            order.refunded_qty[line_id] = min(line["quantity"], order.refunded_qty.get(line_id, 0) + quantity)
        order.refunded = min(order.subtotal, order.refunded + amount)
        whole = order.refunded >= order.subtotal or all(
            order.refunded_qty.get(line["line_id"], 0) == line["quantity"] for line in order.lines
        )
        if whole:
            target = order.points
        elif any(order.refunded_qty.values()):
            refunded_value = sum(
                line["unit_price"] * order.refunded_qty.get(line["line_id"], 0) for line in order.lines
            )
            target = min(refunded_value // 100, order.points)
        else:
            target = min(order.refunded // 100, order.points)
        delta = max(target - order.reversed, 0)
        order.reversed += delta
        if delta:
            self.debit(order.member, delta, order_first=order.order_id)

    def cancel(self, order: Order) -> None:
        if order.cancelled:
            return
        remaining = order.points - order.reversed
        order.reversed = order.points
        order.cancelled = True
        if remaining:
            self.debit(order.member, remaining, order_first=order.order_id)

    def expire(self) -> None:
        for member, lots in self.lots.items():
            for lot in lots:
                if lot.remaining and lot.expires_at <= self.now:
                    self.balances[member] -= lot.remaining
                    lot.remaining = 0
