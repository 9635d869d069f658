"""SLA due times: on the clock, and in business hours in the store's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from loyalty import sla
from loyalty.errors import InvalidInput
from loyalty.sla import BusinessHours, SlaPolicy, SlaTarget


class TestDueTimes:
    def test_urgent_runs_on_the_clock(self) -> None:
        opened = datetime(2026, 3, 6, 22, 0, tzinfo=UTC)  # a Friday night
        due = sla.due_times(sla.DEFAULT_POLICY, priority="urgent", opened_at=opened, timezone="Europe/Berlin")
        assert due.first_response_due == datetime(2026, 3, 6, 23, 0, tzinfo=UTC)
        assert due.resolution_due == datetime(2026, 3, 7, 6, 0, tzinfo=UTC)

    def test_business_hours_skip_the_weekend_in_the_store_time_zone(self) -> None:
        # Friday 16:00 in Berlin (15:00 UTC, CET): one open hour left that day, then Monday 09:00.
        opened = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
        due = sla.due_times(sla.DEFAULT_POLICY, priority="normal", opened_at=opened, timezone="Europe/Berlin")
        # 8 business hours: 1 on Friday, 7 on Monday -> Monday 16:00 Berlin = 15:00 UTC.
        assert due.first_response_due == datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
        # 24 business hours: 1 + 8 (Mon) + 8 (Tue) + 7 (Wed) -> Wednesday 16:00 Berlin.
        assert due.resolution_due == datetime(2026, 3, 11, 15, 0, tzinfo=UTC)

    def test_same_instant_other_time_zone_other_promise(self) -> None:
        opened = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # Friday 10:00 in New York
        due = sla.due_times(
            sla.DEFAULT_POLICY, priority="normal", opened_at=opened, timezone="America/New_York"
        )
        # 7 hours left on Friday (10:00-17:00), 1 more on Monday: Monday 10:00 local, which is
        # EDT by then (the US switched on Sunday 8 March) = 14:00 UTC.
        assert due.first_response_due == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)

    def test_opened_on_a_saturday_starts_monday_morning(self) -> None:
        opened = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
        policy = SlaPolicy(
            targets=sla.DEFAULT_POLICY.targets
            | {"high": SlaTarget(first_response_minutes=30, resolution_minutes=120, business_hours=True)}
        )
        due = sla.due_times(policy, priority="high", opened_at=opened, timezone="Europe/Berlin")
        assert due.first_response_due == datetime(2026, 3, 9, 8, 30, tzinfo=UTC)  # 09:30 CET

    def test_daylight_saving_switch_counts_real_hours(self) -> None:
        # Berlin switches to CEST on Sunday 29 March 2026; Friday 16:00 CET + 2 business hours
        # -> Monday 10:00 CEST = 08:00 UTC.
        opened = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)
        hours = BusinessHours()
        due = sla.add_business_minutes(opened, 120, hours, ZoneInfo("Europe/Berlin"))
        assert due == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)

    def test_policy_needs_every_priority_and_sane_hours(self) -> None:
        with pytest.raises(InvalidInput):
            sla.validate(
                SlaPolicy(targets={"low": SlaTarget(first_response_minutes=1, resolution_minutes=2)})
            )
        with pytest.raises(InvalidInput):
            sla.validate(SlaPolicy(business_hours=BusinessHours(start="18:00", end="09:00")))
