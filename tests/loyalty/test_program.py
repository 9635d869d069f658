"""The program document: defaults, validation naming the field, JSON/YAML/TOML round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import msgspec
import pytest

from loyalty.errors import InvalidInput
from loyalty.program import (
    BirthdayMonth,
    BirthdayTrigger,
    Campaign,
    Care,
    CategoryBonus,
    FirstOrderBonus,
    Gift,
    Level,
    MilestoneTrigger,
    Points,
    ProductBonus,
    Program,
    QuietHours,
    Reward,
    Tiers,
    TierWithinReachTrigger,
    decode,
    default_program,
    encode,
    validate,
)

Format = Literal["json", "yaml", "toml"]


def rich_program() -> Program:
    """A program using every kind of field, with values that differ from the defaults."""
    return Program(
        points=Points(per_currency_unit=0.5, expiry_days=730, pending_days=14),
        tiers=Tiers(
            metric="points",
            window_days=180,
            downgrade_grace_days=60,
            levels=[
                Level(code="member", name="Member", threshold=0),
                Level(code="silver", name="Silver", threshold=1_000, multiplier=1.25),
                Level(code="gold", name="Gold", threshold=5_000, multiplier=1.5),
            ],
        ),
        rules=[
            CategoryBonus(category="coffee", multiplier=2.0),
            ProductBonus(product_ids=["p-1", "p-2"], multiplier=3.0),
            Campaign(
                name="Black Friday",
                starts_at=datetime(2025, 11, 28, 0, tzinfo=timezone(timedelta(hours=1))),
                ends_at=datetime(2025, 12, 1, 0, tzinfo=UTC),
                multiplier=2.5,
                category="tea",
            ),
            Campaign(
                name="Summer",
                starts_at=datetime(2025, 7, 1, tzinfo=UTC),
                ends_at=datetime(2025, 8, 1, tzinfo=UTC),
                multiplier=1.1,
            ),
            FirstOrderBonus(points=100),
            BirthdayMonth(multiplier=2.0),
        ],
        rewards=[
            Reward(id="voucher-5", name="5 EUR voucher", cost=500, value=500),
            Reward(id="ship", name="Free shipping", cost=300, kind="free_shipping"),
        ],
        care=Care(
            gift_budget_per_month=20_000,
            member_gift_cooldown_days=60,
            quiet_hours=QuietHours(start="22:00", end="07:30"),
            triggers=[
                BirthdayTrigger(days_before=3, gift=Gift(kind="voucher", value=500)),
                MilestoneTrigger(orders=[5, 10], gift=Gift(kind="product", product_id="p-9")),
                TierWithinReachTrigger(within_percent=15),
            ],
        ),
    )


def as_dict(program: Program) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(program)
    return result


class TestDefaults:
    def test_an_empty_document_takes_every_default(self) -> None:
        program = decode(b"{}")
        assert program == Program()
        assert program.points == Points(per_currency_unit=1.0, expiry_days=365, pending_days=0)
        assert [level.code for level in program.tiers.levels] == ["member"]
        assert (program.tiers.metric, program.tiers.window_days, program.tiers.downgrade_grace_days) == (
            "spend",
            365,
            30,
        )

    def test_a_document_names_only_what_it_changes(self) -> None:
        program = decode(b'{"points": {"expiry_days": 0}}')
        assert program.points == Points(expiry_days=0)
        assert program.tiers == Tiers()

    def test_the_default_program_is_valid_with_three_tiers(self) -> None:
        program = validate(default_program())
        assert [(lvl.code, lvl.threshold) for lvl in program.tiers.levels] == [
            ("member", 0),
            ("silver", 50_000),
            ("gold", 150_000),
        ]
        assert [reward.id for reward in program.rewards] == ["voucher-5", "voucher-10"]

    def test_level_lookup_falls_back_to_the_lowest(self) -> None:
        program = default_program()
        assert program.level("gold").multiplier == 1.5
        assert program.level("vanished").code == "member"
        assert program.reward("voucher-5") is not None
        assert program.reward("nope") is None


class TestRoundTrip:
    @pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
    def test_every_field_survives(self, fmt: Format) -> None:
        program = rich_program()
        again = decode(encode(program, fmt=fmt), fmt=fmt)
        assert again == program
        assert as_dict(again) == as_dict(program)

    @pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
    def test_default_and_versioned_programs_survive(self, fmt: Format) -> None:
        program = msgspec.structs.replace(default_program(), version=7)
        assert decode(encode(program, fmt=fmt), fmt=fmt) == program

    def test_campaign_times_keep_their_offset(self) -> None:
        again = decode(encode(rich_program(), fmt="toml"), fmt="toml")
        campaign = again.rules[2]
        assert isinstance(campaign, Campaign)
        assert campaign.starts_at == datetime(2025, 11, 27, 23, tzinfo=UTC)


def invalid(raw: bytes, fmt: Format = "json") -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        decode(raw, fmt=fmt)
    return caught.value


def field_of(document: dict[str, Any]) -> str:
    error = invalid(msgspec.json.encode(document))
    field: str = error.extra["field"]
    return field


def levels(*thresholds: int, codes: tuple[str, ...] = ("a", "b", "c")) -> dict[str, Any]:
    pairs = zip(codes, thresholds, strict=False)
    return {"tiers": {"levels": [{"code": c, "name": c.upper(), "threshold": t} for c, t in pairs]}}


CAMPAIGN = {"kind": "campaign", "name": "C", "multiplier": 2}


class TestValidation:
    @pytest.mark.parametrize(
        ("document", "field"),
        [
            (levels(0, 10, 10), "tiers.levels[2].threshold"),
            (levels(0, 20, 10), "tiers.levels[2].threshold"),
            (levels(5, 10), "tiers.levels[0].threshold"),
            (levels(0, 10, codes=("a", "a")), "tiers.levels"),
            ({"tiers": {"levels": []}}, "tiers.levels"),
            ({"tiers": {"metric": "visits"}}, "tiers.metric"),
            ({"tiers": {"window_days": 0}}, "tiers.window_days"),
            ({"tiers": {"levels": [{"code": "A B", "name": "x", "threshold": 0}]}}, "tiers.levels[0].code"),
            (
                {"tiers": {"levels": [{"code": "a", "name": "x", "threshold": 0, "multiplier": 0}]}},
                "tiers.levels[0].multiplier",
            ),
            ({"points": {"per_currency_unit": -1}}, "points.per_currency_unit"),
            ({"points": {"expiry_days": "soon"}}, "points.expiry_days"),
            ({"points": {"colour": "red"}}, "points"),
            ({"rules": [{"kind": "moon_bonus"}]}, "rules[0].kind"),
            (
                {"rules": [{"kind": "category_bonus", "category": "tea", "multiplier": 0}]},
                "rules[0].multiplier",
            ),
            (
                {
                    "rules": [
                        CAMPAIGN | {"starts_at": "2025-01-01T00:00:00", "ends_at": "2025-02-01T00:00:00Z"}
                    ]
                },
                "rules[0].starts_at",
            ),
            (
                {
                    "rules": [
                        CAMPAIGN | {"starts_at": "2025-02-01T00:00:00Z", "ends_at": "2025-01-01T00:00:00Z"}
                    ]
                },
                "rules[0].ends_at",
            ),
            ({"rules": [{"kind": "first_order_bonus", "points": 5}] * 2}, "rules"),
            ({"rules": [{"kind": "first_order_bonus", "points": 0}]}, "rules[0].points"),
            ({"rewards": [{"id": "r", "name": "R", "cost": 0}]}, "rewards[0].cost"),
            ({"rewards": [{"id": "r", "name": "R", "cost": 1}] * 2}, "rewards"),
            (
                {"rewards": [{"id": "r", "name": "R", "cost": 1, "kind": "discount_percent", "value": 150}]},
                "rewards[0].value",
            ),
            ({"care": {"quiet_hours": {"start": "25:00"}}}, "care.quiet_hours.start"),
            ({"care": {"triggers": [{"kind": "birthday"}, {"kind": "birthday"}]}}, "care.triggers"),
            ({"care": {"triggers": [{"kind": "milestone", "orders": []}]}}, "care.triggers[0].orders"),
        ],
    )
    def test_the_error_names_the_field(self, document: dict[str, Any], field: str) -> None:
        assert field_of(document) == field

    @pytest.mark.parametrize(
        ("raw", "fmt"),
        [
            (b'{"points": ', "json"),
            (b"points: [unclosed", "yaml"),
            (b"points = = 1", "toml"),
            (b"[1, 2]", "json"),
        ],
    )
    def test_unreadable_documents_name_the_program(self, raw: bytes, fmt: Format) -> None:
        assert invalid(raw, fmt).extra["field"] == "program"

    def test_yaml_and_toml_errors_name_the_field_too(self) -> None:
        assert invalid(b"tiers:\n  window_days: -3\n", "yaml").extra["field"] == "tiers.window_days"
        assert invalid(b"[points]\nexpiry_days = -1\n", "toml").extra["field"] == "points.expiry_days"
