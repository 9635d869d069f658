"""The earning formula line by line, and reversals in exact proportion (pure; no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.earning import (
    MICRO,
    Line,
    OrderFacts,
    RefundedLine,
    minor_digits,
    order_points,
    reversal_target,
)
from loyalty.program import (
    BirthdayMonth,
    Campaign,
    CategoryBonus,
    FirstOrderBonus,
    Points,
    ProductBonus,
    Program,
    Rule,
    default_program,
)

BERLIN = ZoneInfo("Europe/Berlin")
PLACED = datetime(2025, 3, 15, 12, tzinfo=UTC)


def program(*rules: Rule, per_currency_unit: float = 1.0) -> Program:
    """The default tiers (member x1, silver x1.25, gold x1.5) with the given rules."""
    return msgspec.structs.replace(
        default_program(), rules=list(rules), points=Points(per_currency_unit=per_currency_unit)
    )


def order(
    subtotal: int = 10_000,
    *lines: Line,
    currency: str = "EUR",
    placed_at: datetime = PLACED,
    tier_code: str = "member",
    first_order: bool = False,
    birthday: date | None = None,
    timezone: ZoneInfo = BERLIN,
) -> OrderFacts:
    return OrderFacts(
        subtotal=subtotal,
        currency=currency,
        placed_at=placed_at,
        lines=lines,
        tier_code=tier_code,
        first_order=first_order,
        birthday=birthday,
        timezone=timezone,
    )


def line(
    line_id: str, amount: int, *, category: str | None = None, product: str | None = None, quantity: int = 1
) -> Line:
    return Line(line_id, product, category, quantity, amount // quantity)


def points(prog: Program, facts: OrderFacts) -> int:
    return order_points(prog, facts).points


class TestBase:
    def test_one_point_per_major_unit_floored(self) -> None:
        assert points(program(), order(10_000)) == 100
        earning = order_points(program(), order(12_345))
        assert (earning.points, earning.micro_points, earning.bonus_points) == (123, 123_450_000, 0)
        assert earning.rules == ("tier:memberx1",)

    def test_a_fractional_rate_has_no_float_residue(self) -> None:
        # In floats 1.15 * 100 is 114.99999999999999 and 0.1 * 123.45 is 12.345000000000001.
        assert points(program(per_currency_unit=1.15), order(10_000)) == 115
        assert order_points(program(per_currency_unit=0.1), order(12_345)).micro_points == 12_345_000
        assert points(program(per_currency_unit=0.29), order(10_000)) == 29

    @pytest.mark.parametrize(
        ("tier", "expected"), [("member", 100), ("silver", 125), ("gold", 150), ("gone", 100)]
    )
    def test_the_tier_multiplier(self, tier: str, expected: int) -> None:
        assert points(program(), order(10_000, tier_code=tier)) == expected

    def test_zero_subtotal_earns_nothing(self) -> None:
        assert points(program(FirstOrderBonus(points=50)), order(0)) == 0

    @pytest.mark.parametrize(
        ("currency", "subtotal", "expected"),
        [("JPY", 1_234, 1_234), ("KWD", 12_345, 12), ("eur", 12_345, 123)],
    )
    def test_currency_minor_units(self, currency: str, subtotal: int, expected: int) -> None:
        assert points(program(), order(subtotal, currency=currency)) == expected

    def test_jpy_with_a_fractional_rate(self) -> None:
        assert minor_digits("JPY") == 0
        earning = order_points(
            program(per_currency_unit=0.01), order(1_299, currency="JPY", tier_code="silver")
        )
        # 1299 yen x 0.01 x 1.25 = 16.2375 points
        assert (earning.points, earning.micro_points) == (16, 16_237_500)


class TestRuleBonuses:
    def test_category_bonus_applies_to_matching_lines_only(self) -> None:
        prog = program(CategoryBonus(category="coffee", multiplier=2.0))
        earning = order_points(prog, order(10_000, line("a", 4_000, category="coffee"), line("b", 6_000)))
        assert earning.points == 80 + 60
        assert [(le.line_id, le.micro_points) for le in earning.lines] == [
            ("a", 80 * MICRO),
            ("b", 60 * MICRO),
        ]
        assert "category_bonus:coffeex2" in earning.rules

    def test_product_bonus_applies_to_its_products(self) -> None:
        prog = program(ProductBonus(product_ids=["p-1"], multiplier=3.0))
        facts = order(
            3_000, line("a", 1_000, product="p-1"), line("b", 1_000, product="p-2"), line("c", 1_000)
        )
        assert points(prog, facts) == 30 + 10 + 10

    def test_bonuses_multiply_with_the_tier(self) -> None:
        prog = program(
            CategoryBonus(category="coffee", multiplier=2.0), ProductBonus(product_ids=["p"], multiplier=1.5)
        )
        facts = order(
            2_000, line("a", 1_000, category="coffee", product="p"), line("b", 1_000), tier_code="gold"
        )
        # a: 10 x 1.5 (gold) x 2 x 1.5 = 45; b: 10 x 1.5 = 15
        assert points(prog, facts) == 60

    def test_order_level_discount_is_shared_by_line_amount(self) -> None:
        prog = program(CategoryBonus(category="coffee", multiplier=2.0))
        # Lines total 100.00, the eligible subtotal after a 20.00 order discount is 80.00.
        earning = order_points(prog, order(8_000, line("a", 5_000, category="coffee"), line("b", 5_000)))
        assert earning.points == 80 + 40

    def test_line_discounts_count_before_the_share(self) -> None:
        discounted = Line("a", None, "coffee", 2, 3_000, discount=2_000)  # 40.00 after its discount
        prog = program(CategoryBonus(category="coffee", multiplier=2.0))
        assert points(prog, order(10_000, discounted, line("b", 6_000))) == 80 + 60

    def test_floors_per_line_in_micro_points_then_once_for_the_order(self) -> None:
        # Three lines of 33.33 EUR earn 33.33 each: 99.99 in total, floored once to 99.
        facts = order(9_999, line("a", 3_333), line("b", 3_333), line("c", 3_333))
        earning = order_points(program(), facts)
        assert (earning.points, earning.micro_points) == (99, 99_990_000)


class TestCampaign:
    START = datetime(2025, 11, 28, tzinfo=UTC)
    END = datetime(2025, 12, 1, tzinfo=UTC)

    def campaign(self, category: str | None = None) -> Program:
        return program(
            Campaign(name="bf", starts_at=self.START, ends_at=self.END, multiplier=3.0, category=category)
        )

    @pytest.mark.parametrize(
        ("placed_at", "expected"),
        [
            (START - timedelta(microseconds=1), 100),
            (START, 300),
            (END - timedelta(microseconds=1), 300),
            (END, 100),
        ],
    )
    def test_window_includes_its_start_and_excludes_its_end(self, placed_at: datetime, expected: int) -> None:
        assert points(self.campaign(), order(10_000, placed_at=placed_at)) == expected

    def test_a_window_in_another_offset_is_the_same_instant(self) -> None:
        just_before = datetime(2025, 11, 28, 0, 59, tzinfo=BERLIN)  # 23:59 UTC the day before
        assert points(self.campaign(), order(10_000, placed_at=just_before)) == 100

    def test_a_category_campaign_touches_its_lines_only(self) -> None:
        facts = order(10_000, line("a", 5_000, category="tea"), line("b", 5_000), placed_at=self.START)
        assert points(self.campaign("tea"), facts) == 150 + 50


class TestFixedAndPersonal:
    def test_first_order_bonus_is_fixed_and_only_for_the_first(self) -> None:
        prog = program(FirstOrderBonus(points=50))
        first = order_points(prog, order(10_000, tier_code="gold", first_order=True))
        assert (first.points, first.bonus_points, first.micro_points) == (150 + 50, 50, 150 * MICRO)
        assert points(prog, order(10_000, first_order=False)) == 100

    @pytest.mark.parametrize(
        ("placed_at", "timezone", "expected"),
        [
            (datetime(2025, 3, 31, 22, 30, tzinfo=UTC), BERLIN, 200),  # 1 April 00:30 in Berlin
            (datetime(2025, 3, 31, 22, 30, tzinfo=UTC), ZoneInfo("UTC"), 100),  # still March in UTC
            (datetime(2025, 4, 30, 22, 30, tzinfo=UTC), BERLIN, 100),  # 1 May in Berlin
            (datetime(2025, 4, 30, 21, 59, tzinfo=UTC), BERLIN, 200),  # 23:59 on 30 April
        ],
    )
    def test_birthday_month_in_the_store_time_zone(
        self, placed_at: datetime, timezone: ZoneInfo, expected: int
    ) -> None:
        prog = program(BirthdayMonth(multiplier=2.0))
        facts = order(10_000, placed_at=placed_at, birthday=date(1990, 4, 17), timezone=timezone)
        assert points(prog, facts) == expected

    def test_no_birthday_no_bonus(self) -> None:
        assert points(program(BirthdayMonth(multiplier=2.0)), order(10_000, birthday=None)) == 100


def refunded(facts: OrderFacts, prog: Program, quantities: list[int]) -> list[RefundedLine]:
    earning = order_points(prog, facts)
    return [
        RefundedLine(micro_points=le.micro_points, quantity=ln.quantity, refunded_quantity=q)
        for le, ln, q in zip(earning.lines, facts.lines, quantities, strict=True)
    ]


class TestReversal:
    PROG = program(CategoryBonus(category="coffee", multiplier=2.0), FirstOrderBonus(points=25))
    FACTS = order(
        10_000,
        line("a", 4_000, category="coffee", quantity=4),
        line("b", 6_000, quantity=3),
        first_order=True,
    )

    def target(self, quantities: list[int], amount: int = 0, whole: bool = False) -> int:
        earning = order_points(self.PROG, self.FACTS)
        return reversal_target(
            points=earning.points,
            micro_points=earning.micro_points,
            lines=refunded(self.FACTS, self.PROG, quantities),
            subtotal=self.FACTS.subtotal,
            refunded_amount=amount,
            whole=whole,
        )

    def test_the_order(self) -> None:
        assert order_points(self.PROG, self.FACTS).points == 80 + 60 + 25

    def test_named_lines_reverse_their_own_points(self) -> None:
        assert self.target([1, 0], amount=1_000) == 20  # one coffee: 20 of its 80
        assert self.target([0, 1], amount=2_000) == 20  # one of the rest: 20 of 60

    def test_an_amount_without_lines_reverses_in_proportion(self) -> None:
        assert self.target([0, 0], amount=2_500) == 35  # a quarter of 140 (the bonus stays)

    def test_everything_refunded_by_lines_keeps_the_bonus_until_whole(self) -> None:
        assert self.target([4, 3], amount=10_000) == 140
        assert self.target([4, 3], amount=10_000, whole=True) == 165

    def test_the_amount_is_capped_at_the_subtotal(self) -> None:
        assert self.target([0, 0], amount=12_000) == 140


@st.composite
def orders(draw: st.DrawFn) -> tuple[Program, OrderFacts]:
    multipliers = st.sampled_from([1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 0.7])
    prog = program(
        CategoryBonus(category="c", multiplier=draw(multipliers)),
        FirstOrderBonus(points=draw(st.integers(1, 100))),
        per_currency_unit=draw(st.sampled_from([0.1, 1.0, 1.15, 2.5])),
    )
    lines = [
        Line(
            f"l{n}",
            None,
            draw(st.sampled_from(["c", None])),
            draw(st.integers(1, 5)),
            draw(st.integers(0, 50_000)),
        )
        for n in range(draw(st.integers(1, 4)))
    ]
    total = sum(ln.amount for ln in lines)
    subtotal = draw(st.integers(0, total)) if total else 0
    facts = order(
        subtotal, *lines, tier_code=draw(st.sampled_from(["member", "silver", "gold"])), first_order=True
    )
    return prog, facts


@given(data=st.data(), case=orders())
def test_line_refunds_reverse_monotonically_and_exactly_in_the_end(
    data: st.DataObject, case: tuple[Program, OrderFacts]
) -> None:
    """Refunds of random line quantities, in random order: the target never falls nor overshoots,
    and the refund completing the order reverses exactly what remained."""
    prog, facts = case
    earning = order_points(prog, facts)
    units = [index for index, ln in enumerate(facts.lines) for _ in range(ln.quantity)]
    sequence = data.draw(st.permutations(units))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(sequence)), max_size=len(sequence))) | {len(sequence)})
    counts = [0] * len(facts.lines)
    reversed_so_far = 0
    done = 0
    for cut in cuts:
        for index in sequence[done:cut]:
            counts[index] += 1
        done = cut
        target = reversal_target(
            points=earning.points,
            micro_points=earning.micro_points,
            lines=refunded(facts, prog, counts),
            subtotal=facts.subtotal,
            refunded_amount=0,
            whole=cut == len(sequence),
        )
        assert reversed_so_far <= target <= earning.points
        reversed_so_far = target
    assert reversed_so_far == earning.points


@given(case=orders(), parts=st.lists(st.integers(1, 10_000), min_size=1, max_size=8))
def test_amount_refunds_reverse_monotonically_and_exactly_in_the_end(
    case: tuple[Program, OrderFacts], parts: list[int]
) -> None:
    """Partial refunds by amount that add up to the whole subtotal reverse exactly the points."""
    prog, facts = case
    earning = order_points(prog, facts)
    scale = sum(parts)
    cumulative = [facts.subtotal * upto // scale for upto in accumulate(parts)]
    targets = [
        reversal_target(
            points=earning.points,
            micro_points=earning.micro_points,
            lines=[],
            subtotal=facts.subtotal,
            refunded_amount=amount,
            whole=amount == facts.subtotal,
        )
        for amount in cumulative
    ]
    assert targets == sorted(targets)
    assert all(0 <= t <= earning.points for t in targets)
    assert targets[-1] == earning.points
