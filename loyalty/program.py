"""The program document: points, tiers, earning rules, rewards and care, validated as a whole.

One document per store, versioned. Marketers edit it as JSON, YAML or TOML; every field has a
default, so a new store starts with a working program and a document may name only what it changes.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from loyalty.errors import InvalidInput

Code = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", examples=["gold"])]
Multiplier = Annotated[float, Meta(gt=0, le=100, description="A factor on points; 1.0 changes nothing")]
# Bounded so that every amount, threshold and count fits PostgreSQL's bigint with room to add up.
NonNegative = Annotated[int, Meta(ge=0, le=10**12)]
Positive = Annotated[int, Meta(gt=0, le=10**12)]
Days = Annotated[int, Meta(ge=0, le=36_500)]
Text = Annotated[str, Meta(min_length=1, max_length=200)]
ClockTime = Annotated[str, Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["21:00"])]


class _Doc(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=False):
    pass


class Points(_Doc):
    per_currency_unit: Annotated[float, Meta(gt=0, le=1000)] = 1.0
    """Points per major currency unit of eligible subtotal, before multipliers."""
    expiry_days: Days = 365
    """Days until earned points expire; 0 means they never do."""
    pending_days: Days = 0
    """Days earned points stay pending (the return window) before they can be spent."""


class Level(_Doc):
    code: Code
    name: Text
    threshold: NonNegative
    """The metric value (minor units for `spend`) from which a member holds this level."""
    multiplier: Multiplier = 1.0


class Tiers(_Doc):
    metric: Literal["spend", "points", "orders"] = "spend"
    window_days: Annotated[int, Meta(ge=1, le=3650)] = 365
    downgrade_grace_days: Days = 30
    """How long a member stays below their level's threshold before moving down."""
    levels: Annotated[list[Level], Meta(min_length=1, max_length=20)] = msgspec.field(
        default_factory=lambda: [Level(code="member", name="Member", threshold=0)]
    )


class CategoryBonus(_Doc, tag_field="kind", tag="category_bonus"):
    """Multiplies the points of lines in a category."""

    category: Text
    multiplier: Multiplier


class ProductBonus(_Doc, tag_field="kind", tag="product_bonus"):
    """Multiplies the points of lines of the given products."""

    product_ids: Annotated[list[Text], Meta(min_length=1)]
    multiplier: Multiplier


class Campaign(_Doc, tag_field="kind", tag="campaign"):
    """Multiplies points of orders placed inside a time window (optionally one category's lines)."""

    name: Text
    starts_at: datetime
    ends_at: datetime
    multiplier: Multiplier
    category: Text | None = None


class FirstOrderBonus(_Doc, tag_field="kind", tag="first_order_bonus"):
    """Fixed points for a member's first order (taken back only if that order is undone entirely)."""

    points: Positive


class BirthdayMonth(_Doc, tag_field="kind", tag="birthday_month"):
    """Multiplies points of orders placed in the member's birthday month (store time zone)."""

    multiplier: Multiplier


Rule = CategoryBonus | ProductBonus | Campaign | FirstOrderBonus | BirthdayMonth


class Reward(_Doc):
    id: Code
    name: Text
    cost: Positive
    """Points it costs."""
    kind: Literal["voucher", "discount_percent", "free_shipping", "product"] = "voucher"
    value: NonNegative = 0
    """Minor units for a voucher, percent for a discount."""


class Gift(_Doc):
    kind: Literal["voucher", "product", "points"] = "voucher"
    value: NonNegative = 0
    """Minor units for a voucher (its cost against the budget), points for `points`."""
    product_id: str | None = None


class QuietHours(_Doc):
    start: ClockTime = "21:00"
    end: ClockTime = "08:00"


class BirthdayTrigger(_Doc, tag_field="kind", tag="birthday"):
    days_before: Annotated[int, Meta(ge=0, le=60)] = 0
    gift: Gift | None = None


class AnniversaryTrigger(_Doc, tag_field="kind", tag="anniversary"):
    gift: Gift | None = None


class MilestoneTrigger(_Doc, tag_field="kind", tag="milestone"):
    orders: Annotated[list[Positive], Meta(min_length=1)]
    gift: Gift | None = None


class TierWelcomeTrigger(_Doc, tag_field="kind", tag="tier_welcome"):
    gift: Gift | None = None


class ServiceRecoveryTrigger(_Doc, tag_field="kind", tag="service_recovery"):
    gift: Gift | None = None


class WinBackTrigger(_Doc, tag_field="kind", tag="win_back"):
    overdue_factor: Annotated[float, Meta(gt=1, le=20)] = 2.0
    gift: Gift | None = None


class ReplenishTrigger(_Doc, tag_field="kind", tag="replenish"):
    days_before: Annotated[int, Meta(ge=0, le=60)] = 3


class TierWithinReachTrigger(_Doc, tag_field="kind", tag="tier_within_reach"):
    within_percent: Annotated[float, Meta(gt=0, le=100)] = 10


class PointsExpiringTrigger(_Doc, tag_field="kind", tag="points_expiring"):
    days_before: Annotated[int, Meta(ge=1, le=365)] = 30


class RecommendedNextTrigger(_Doc, tag_field="kind", tag="recommended_next"):
    products: Annotated[int, Meta(ge=1, le=10)] = 3
    """How many of the member's `discover` recommendations the monthly suggestion names."""


Trigger = (
    BirthdayTrigger
    | AnniversaryTrigger
    | MilestoneTrigger
    | TierWelcomeTrigger
    | ServiceRecoveryTrigger
    | WinBackTrigger
    | ReplenishTrigger
    | TierWithinReachTrigger
    | PointsExpiringTrigger
    | RecommendedNextTrigger
)


class Care(_Doc):
    gift_budget_per_month: NonNegative = 0
    """Minor units the gifts of one calendar month may cost, in total."""
    member_gift_cooldown_days: Days = 90
    """Days after a gift before the same member can receive another (service recovery excepted)."""
    member_message_cap_days: Days = 3
    """At most one proactive message (gift or suggestion) per member within this many days; 0 turns
    the cap off (still one per member per scan). Service recovery is exempt."""
    quiet_hours: QuietHours = msgspec.field(default_factory=QuietHours)
    triggers: list[Trigger] = msgspec.field(default_factory=list)


class Program(_Doc):
    """A store's loyalty program. `version` is set by Patron and ignored on input."""

    version: int | None = None
    points: Points = msgspec.field(default_factory=Points)
    tiers: Tiers = msgspec.field(default_factory=Tiers)
    rules: list[Rule] = msgspec.field(default_factory=list)
    rewards: list[Reward] = msgspec.field(default_factory=list)
    care: Care = msgspec.field(default_factory=Care)

    def level(self, code: str) -> Level:
        """The level with this code, or the lowest one (a member on a level that no longer exists)."""
        return next((level for level in self.tiers.levels if level.code == code), self.tiers.levels[0])

    def reward(self, reward_id: str) -> Reward | None:
        return next((reward for reward in self.rewards if reward.id == reward_id), None)


def default_program() -> Program:
    """What a new store starts with: three tiers on yearly spend, points for a year, two rewards."""
    return Program(
        points=Points(per_currency_unit=1.0, expiry_days=365),
        tiers=Tiers(
            levels=[
                Level(code="member", name="Member", threshold=0, multiplier=1.0),
                Level(code="silver", name="Silver", threshold=50_000, multiplier=1.25),
                Level(code="gold", name="Gold", threshold=150_000, multiplier=1.5),
            ]
        ),
        rewards=[
            Reward(id="voucher-5", name="5 voucher", cost=500, kind="voucher", value=500),
            Reward(id="voucher-10", name="10 voucher", cost=950, kind="voucher", value=1000),
        ],
    )


def _check(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise InvalidInput(message, field=field)


def validate(program: Program) -> Program:
    """Rules across fields that types alone cannot say; raises InvalidInput naming the field."""
    levels = program.tiers.levels
    codes = [level.code for level in levels]
    _check(len(set(codes)) == len(codes), "tiers.levels", f"level codes must be unique: {codes}")
    _check(levels[0].threshold == 0, "tiers.levels[0].threshold", "the first level must start at 0")
    for index, (lower, upper) in enumerate(itertools.pairwise(levels), start=1):
        _check(
            upper.threshold > lower.threshold,
            f"tiers.levels[{index}].threshold",
            f"levels must ascend by threshold: {upper.code} ({upper.threshold}) "
            f"is not above {lower.code} ({lower.threshold})",
        )
    reward_ids = [reward.id for reward in program.rewards]
    _check(len(set(reward_ids)) == len(reward_ids), "rewards", f"reward ids must be unique: {reward_ids}")
    for index, reward in enumerate(program.rewards):
        if reward.kind == "discount_percent":
            _check(0 < reward.value <= 100, f"rewards[{index}].value", "a discount is 1 to 100 percent")
    for index, rule in enumerate(program.rules):
        if isinstance(rule, Campaign):
            _check(rule.starts_at.tzinfo is not None, f"rules[{index}].starts_at", "give a time zone offset")
            _check(rule.ends_at.tzinfo is not None, f"rules[{index}].ends_at", "give a time zone offset")
            _check(
                rule.ends_at > rule.starts_at,
                f"rules[{index}].ends_at",
                "a campaign must end after it starts",
            )
    first_order = [rule for rule in program.rules if isinstance(rule, FirstOrderBonus)]
    _check(len(first_order) <= 1, "rules", "at most one first_order_bonus rule")
    kinds = [type(trigger).__struct_config__.tag for trigger in program.care.triggers]
    _check(len(set(kinds)) == len(kinds), "care.triggers", f"one trigger per kind: {kinds}")
    return program


_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


def decode(raw: bytes, *, fmt: Literal["json", "yaml", "toml"] = "json") -> Program:
    """Parse and validate a document; errors are InvalidInput naming the field."""
    decoders = {"json": msgspec.json.decode, "yaml": msgspec.yaml.decode, "toml": msgspec.toml.decode}
    try:
        program = decoders[fmt](raw, type=Program)
    except msgspec.ValidationError as exc:
        match = _PATH.search(str(exc))
        field = match.group("path") if match else "program"
        raise InvalidInput(str(exc), field=field or "program") from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"not a valid {fmt.upper()} document: {exc}", field="program") from None
    return validate(program)


def encode(program: Program, *, fmt: Literal["json", "yaml", "toml"] = "json") -> bytes:
    if fmt == "json":
        return msgspec.json.format(msgspec.json.encode(program), indent=2)
    if fmt == "yaml":
        return msgspec.yaml.encode(program)
    # TOML has no null: leave unset optional fields out. Datetimes stay datetimes (TOML has them);
    # as strings they would not decode again.
    return msgspec.toml.encode(_without_nulls(msgspec.to_builtins(program, builtin_types=(datetime,))))


def _without_nulls(value: object) -> object:
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
