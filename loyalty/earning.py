"""Points an order earns, and what a refund takes back. Pure: no I/O, no floats near points.

Points = floor(eligible subtotal in major units x points per unit x tier multiplier x the
multipliers of the rules matching each line), plus fixed bonuses. Each line's share is kept in
millionths of a point ("micro points"), so partial refunds reverse in exact proportion and a
sequence of refunds that adds up to the whole order reverses exactly what it earned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from loyalty.program import BirthdayMonth, Campaign, CategoryBonus, FirstOrderBonus, ProductBonus, Program

MICRO = 1_000_000

# ISO 4217 minor units where they are not 2.
_MINOR_DIGITS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX"), 0),
    **dict.fromkeys(("VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def minor_digits(currency: str) -> int:
    return _MINOR_DIGITS.get(currency.upper(), 2)


def exact(value: float) -> Fraction:
    """A document's decimal as written (1.25 is 5/4, not the nearest binary float)."""
    return Fraction(Decimal(repr(value)))


@dataclass(frozen=True, slots=True)
class Line:
    line_id: str
    product_id: str | None
    category: str | None
    quantity: int
    unit_price: int
    discount: int = 0

    @property
    def amount(self) -> int:
        return max(self.quantity * self.unit_price - self.discount, 0)


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What earning needs to know about an order and its member."""

    subtotal: int
    currency: str
    placed_at: datetime
    lines: Sequence[Line]
    tier_code: str
    first_order: bool
    birthday: date | None
    timezone: ZoneInfo


@dataclass(frozen=True, slots=True)
class LineEarning:
    line_id: str
    micro_points: int


@dataclass(frozen=True, slots=True)
class Earning:
    points: int
    micro_points: int
    """Millionths of a point from the lines, before fixed bonuses."""
    bonus_points: int
    lines: tuple[LineEarning, ...]
    rules: tuple[str, ...]
    """What applied, for the ledger's "why": `tier:goldx1.5`, `category_bonus:coffeex2` …"""


def _line_multiplier(program: Program, line: Line, order: OrderFacts, applied: set[str]) -> Fraction:
    factor = Fraction(1)
    for rule in program.rules:
        if isinstance(rule, CategoryBonus) and line.category == rule.category:
            label = f"category_bonus:{rule.category}x{rule.multiplier:g}"
        elif isinstance(rule, ProductBonus) and line.product_id in rule.product_ids:
            label = f"product_bonusx{rule.multiplier:g}"
        elif (
            isinstance(rule, Campaign)
            and rule.starts_at <= order.placed_at < rule.ends_at
            and (rule.category is None or rule.category == line.category)
        ):
            label = f"campaign:{rule.name}x{rule.multiplier:g}"
        elif (
            isinstance(rule, BirthdayMonth)
            and order.birthday is not None
            and order.placed_at.astimezone(order.timezone).month == order.birthday.month
        ):
            label = f"birthday_monthx{rule.multiplier:g}"
        else:
            continue
        factor *= exact(rule.multiplier)
        applied.add(label)
    return factor


def order_points(program: Program, order: OrderFacts) -> Earning:
    level = program.level(order.tier_code)
    base = (
        exact(program.points.per_currency_unit) * exact(level.multiplier) / 10 ** minor_digits(order.currency)
    )
    applied = {f"tier:{level.code}x{level.multiplier:g}"}
    # The subtotal is what is eligible (after order-level discounts): share it out by line amount.
    lines = list(order.lines) or [Line("order", None, None, 1, order.subtotal)]
    line_total = sum(line.amount for line in lines)
    earned = []
    for line in lines:
        share = Fraction(line.amount * order.subtotal, line_total) if line_total else Fraction(0)
        micro = share * base * _line_multiplier(program, line, order, applied) * MICRO
        earned.append(LineEarning(line.line_id, int(micro)))  # int() floors a non-negative Fraction
    micro_total = sum(line.micro_points for line in earned)
    bonus = 0
    if order.first_order:
        for rule in program.rules:
            if isinstance(rule, FirstOrderBonus):
                bonus += rule.points
                applied.add(f"first_order_bonus+{rule.points}")
    return Earning(
        points=micro_total // MICRO + bonus,
        micro_points=micro_total,
        bonus_points=bonus,
        lines=tuple(earned),
        rules=tuple(sorted(applied)),
    )


@dataclass(frozen=True, slots=True)
class RefundedLine:
    micro_points: int
    quantity: int
    refunded_quantity: int
    """Cumulative, including this refund."""


def reversal_target(
    *,
    points: int,
    micro_points: int,
    lines: Sequence[RefundedLine],
    subtotal: int,
    refunded_amount: int,
    whole: bool,
) -> int:
    """How many of an order's points stand reversed once its refunds so far are counted.

    Cumulative, so each refund reverses `target - already reversed`: the rounding never leaves a
    residue, and the refund that completes the order reverses exactly the remainder. Lines decide
    when the refund names them; the amount decides otherwise. Fixed bonuses go only with the whole.
    """
    if whole:
        return points
    if lines and any(line.refunded_quantity for line in lines):
        micro = sum(Fraction(line.micro_points * line.refunded_quantity, line.quantity) for line in lines)
    elif subtotal:
        micro = Fraction(micro_points * min(refunded_amount, subtotal), subtotal)
    else:
        micro = Fraction(0)
    return min(int(micro) // MICRO, points)
