"""Recurrence expansion across time zones, exceptions and bounds (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from controller.bookings.recurrence import MAX_OCCURRENCES, RecurrenceError, expand, parse_rule

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
BERLIN = ZoneInfo("Europe/Berlin")


def test_weekly_class_stays_at_local_time_in_ho_chi_minh() -> None:
    start = datetime(2026, 1, 5, 8, 0, tzinfo=HCM)
    slots = expand(start, start + timedelta(minutes=45), HCM, parse_rule("FREQ=WEEKLY;BYDAY=MO,TH;COUNT=6"))
    assert [s.starts_at.astimezone(HCM).strftime("%a %d %H:%M") for s in slots] == [
        "Mon 05 08:00", "Thu 08 08:00", "Mon 12 08:00", "Thu 15 08:00", "Mon 19 08:00", "Thu 22 08:00",
    ]  # fmt: skip
    assert all(s.starts_at.tzinfo is UTC and s.starts_at.hour == 1 for s in slots)
    assert all(s.ends_at - s.starts_at == timedelta(minutes=45) for s in slots)


def test_a_zone_with_daylight_saving_keeps_the_local_hour_and_moves_in_utc() -> None:
    start = datetime(2026, 3, 26, 8, 0, tzinfo=BERLIN)  # Thursday; clocks go forward on Sunday 29 March
    slots = expand(start, start + timedelta(hours=1), BERLIN, parse_rule("FREQ=DAILY;INTERVAL=2;UNTIL=20260401"))
    assert [s.starts_at.astimezone(BERLIN).strftime("%d %H:%M") for s in slots] == [
        "26 08:00",
        "28 08:00",
        "30 08:00",
        "01 08:00",
    ]
    assert [s.starts_at.hour for s in slots] == [7, 7, 6, 6]  # UTC
    # The same instant read in Ho Chi Minh City expands on Ho Chi Minh's wall clock instead.
    local = expand(start, start + timedelta(hours=1), HCM, parse_rule("FREQ=DAILY;COUNT=5"))
    assert {s.starts_at.astimezone(HCM).hour for s in local} == {14}


def test_exception_dates_and_until_in_utc() -> None:
    start = datetime(2026, 1, 5, 8, 0, tzinfo=HCM)
    rule = parse_rule("RRULE:FREQ=DAILY;UNTIL=20260109T010000Z")
    slots = expand(start, start + timedelta(hours=1), HCM, rule, frozenset({date(2026, 1, 7)}))
    assert [s.starts_at.astimezone(HCM).day for s in slots] == [5, 6, 8, 9]
    assert rule.text() == "FREQ=DAILY;UNTIL=20260109T010000Z"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=YEARLY;COUNT=2", "FREQ must be DAILY or WEEKLY"),
        ("FREQ=DAILY", "needs COUNT or UNTIL"),
        ("FREQ=DAILY;COUNT=2;UNTIL=20260201", "COUNT or UNTIL, not both"),
        ("FREQ=DAILY;COUNT=0", "COUNT must be a whole number from 1 to 1000"),
        (f"FREQ=DAILY;COUNT={MAX_OCCURRENCES + 1}", "COUNT must be a whole number"),
        ("FREQ=DAILY;BYMONTH=2;COUNT=2", "BYMONTH is not supported"),
        ("FREQ=WEEKLY;BYDAY=1MO;COUNT=2", "BYDAY takes MO, TU"),
        ("FREQ=WEEKLY;BYDAY=MO,MO;COUNT=2", "names a weekday twice"),
        ("FREQ=DAILY;UNTIL=2026-02-01", "UNTIL must be a date YYYYMMDD"),
        ("FREQ=DAILY;COUNT=2;COUNT=3", "COUNT appears twice"),
        ("FREQ", "KEY=VALUE pairs"),
    ],
)
def test_rules_outside_the_subset_are_refused_with_a_reason(rule: str, message: str) -> None:
    with pytest.raises(RecurrenceError, match=message):
        parse_rule(rule)


def test_expansion_is_bounded() -> None:
    start = datetime(2026, 1, 5, 8, 0, tzinfo=HCM)
    end = start + timedelta(hours=1)
    with pytest.raises(RecurrenceError, match="at most 2 years: UNTIL is after 2028-01-06"):
        expand(start, end, HCM, parse_rule("FREQ=DAILY;UNTIL=20280201"))
    assert len(expand(start, end, HCM, parse_rule("FREQ=DAILY;COUNT=700"))) == 700
    with pytest.raises(RecurrenceError, match="at most 2 years: this one goes past"):
        expand(start, end, HCM, parse_rule("FREQ=WEEKLY;INTERVAL=2;COUNT=100"))
    with pytest.raises(RecurrenceError, match="leaves no occurrence"):
        expand(start, end, HCM, parse_rule("FREQ=DAILY;COUNT=1"), frozenset({date(2026, 1, 5)}))
