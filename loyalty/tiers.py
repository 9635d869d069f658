"""Tier rules, pure: which level a metric earns, when a member moves, how far the next level is.

The set-based SQL in `loyalty/repository/tiers.py` applies exactly these rules to many members at
once; `evaluate` here is the one-member reference the tests hold the SQL to.

- The target level is the highest level whose threshold is at most the member's metric.
- Above their level: the upgrade applies at once (tier_since = now, below_since cleared).
- Below their level: below_since is set (if not set yet); the member moves down to the target
  only once `downgrade_grace_days` have passed since below_since.
- Back at or above their level's threshold: below_since is cleared.
- A member whose level no longer exists in the program takes the target level at once.
"""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from loyalty.program import Level, Program

Transition = Literal["upgrade", "downgrade after grace", "tier removed"]


class TierChange(msgspec.Struct, frozen=True, kw_only=True):
    """A member's move from one level to another, as recorded in tier_changes."""

    customer_id: str
    from_tier: str
    to_tier: str
    reason: str
    """The transition and what caused it, e.g. `upgrade (order o-1)`."""
    metric_value: int
    program_version: int


class Evaluation(msgspec.Struct, frozen=True, kw_only=True):
    """What one evaluation decides for one member."""

    tier_code: str
    below_since: datetime | None
    transition: Transition | None
    """None when the member keeps their level (below_since may still change)."""


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """How far a member is from the next level (`next` is None at the top)."""

    metric: str
    current: int
    next: str | None
    needed: int


def level_table(program: Program) -> tuple[list[str], list[int]]:
    """Level codes and thresholds, ascending: what the SQL evaluation takes as parameters."""
    levels = program.tiers.levels
    return [level.code for level in levels], [level.threshold for level in levels]


def target_level(program: Program, metric: int) -> Level:
    """The highest level whose threshold is at most `metric` (the first level starts at 0)."""
    _, thresholds = level_table(program)
    index = max(bisect.bisect_right(thresholds, metric) - 1, 0)
    return program.tiers.levels[index]


def evaluate(
    program: Program, *, tier_code: str, below_since: datetime | None, metric: int, now: datetime
) -> Evaluation:
    """One member's evaluation: the reference for the set-based SQL."""
    codes, _ = level_table(program)
    target = target_level(program, metric)
    target_index = codes.index(target.code)
    if tier_code not in codes:
        return Evaluation(tier_code=target.code, below_since=None, transition="tier removed")
    current_index = codes.index(tier_code)
    if target_index > current_index:
        return Evaluation(tier_code=target.code, below_since=None, transition="upgrade")
    if target_index == current_index:
        return Evaluation(tier_code=tier_code, below_since=None, transition=None)
    since = below_since or now
    if now - since >= timedelta(days=program.tiers.downgrade_grace_days):
        return Evaluation(tier_code=target.code, below_since=None, transition="downgrade after grace")
    return Evaluation(tier_code=tier_code, below_since=since, transition=None)


def progress(program: Program, *, tier_code: str, metric: int) -> Progress:
    """Progress towards the level above the member's own (for the member view)."""
    levels = program.tiers.levels
    current = program.level(tier_code)
    above = [level for level in levels if level.threshold > current.threshold]
    following = above[0] if above else None
    return Progress(
        metric=program.tiers.metric,
        current=metric,
        next=following.code if following else None,
        needed=max(following.threshold - metric, 0) if following else 0,
    )
