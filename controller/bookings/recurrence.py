"""Recurrence: an RFC 5545 RRULE subset, parsed strictly and expanded with dateutil in the unit's time zone.

Supported: FREQ=DAILY or WEEKLY, INTERVAL, COUNT or UNTIL (one of them is required: an endless series cannot
be booked), BYDAY (weekly only, plain weekday codes), plus exception dates. The rule expands on the local wall
clock of the series' time zone, so a weekly 08:00 Asia/Ho_Chi_Minh class stays at 08:00 local, and a rule in a
zone with daylight saving time keeps its local hour across the change. Expansion is bounded: at most
`MAX_OCCURRENCES` occurrences and `MAX_SPAN` after the first start, refused with a message otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from dateutil import rrule as du

from controller.bookings.messages import Text

MAX_OCCURRENCES = 1000
MAX_SPAN = timedelta(days=731)
MAX_RULE_LENGTH = 300

_WEEKDAYS = {"MO": du.MO, "TU": du.TU, "WE": du.WE, "TH": du.TH, "FR": du.FR, "SA": du.SA, "SU": du.SU}
_FREQUENCIES: dict[str, Literal[2, 3]] = {"DAILY": du.DAILY, "WEEKLY": du.WEEKLY}
_KEYS = ("FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY")
_UNTIL_DATE = re.compile(r"^\d{8}$")
_UNTIL_UTC = re.compile(r"^\d{8}T\d{6}Z$")


class RecurrenceError(ValueError):
    """The rule is outside the supported subset or expands too far; the message says what is wrong."""


@dataclass(frozen=True)
class Rule:
    freq: str
    interval: int = 1
    count: int | None = None
    until: date | datetime | None = None
    """A local date (inclusive, in the series' time zone) or an aware UTC datetime."""
    byday: tuple[str, ...] = ()

    def text(self) -> str:
        """The rule in RFC 5545 syntax, normalised (the form stored)."""
        parts = [f"FREQ={self.freq}"]
        if self.interval != 1:
            parts.append(f"INTERVAL={self.interval}")
        if self.count is not None:
            parts.append(f"COUNT={self.count}")
        if isinstance(self.until, datetime):
            parts.append(f"UNTIL={self.until.astimezone(UTC):%Y%m%dT%H%M%SZ}")
        elif self.until is not None:
            parts.append(f"UNTIL={self.until:%Y%m%d}")
        if self.byday:
            parts.append(f"BYDAY={','.join(self.byday)}")
        return ";".join(parts)


@dataclass(frozen=True)
class Slot:
    """One occurrence in UTC; `recurrence_id` is the start the rule gave it."""

    recurrence_id: datetime
    starts_at: datetime
    ends_at: datetime


def _positive(key: str, value: str, highest: int) -> int:
    if not value.isdigit() or not 1 <= int(value) <= highest:
        raise RecurrenceError(f"{key} must be a whole number from 1 to {highest}, not {value!r}")
    return int(value)


def _until(value: str) -> date | datetime:
    try:
        if _UNTIL_DATE.match(value):
            return datetime.strptime(value, "%Y%m%d").date()
        if _UNTIL_UTC.match(value):
            return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        pass
    raise RecurrenceError(f"UNTIL must be a date YYYYMMDD or a UTC time YYYYMMDDTHHMMSSZ, not {value!r}")


def parse_rule(text: str) -> Rule:
    """Parse an RRULE value ("FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10"; a leading "RRULE:" is allowed)."""
    text = text.strip()
    if len(text) > MAX_RULE_LENGTH:
        raise RecurrenceError(f"a recurrence rule has at most {MAX_RULE_LENGTH} characters")
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:") :]
    fields: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        key = key.strip().upper()
        value = value.strip().upper()
        if not sep or not key or not value:
            raise RecurrenceError(f"a recurrence rule is KEY=VALUE pairs separated by ';', not {part!r}")
        if key not in _KEYS:
            raise RecurrenceError(f"{key} is not supported in a recurrence rule: use {', '.join(_KEYS)}")
        if key in fields:
            raise RecurrenceError(f"{key} appears twice in the recurrence rule")
        fields[key] = value
    freq = fields.get("FREQ")
    if freq is None:
        raise RecurrenceError("a recurrence rule needs FREQ=DAILY or FREQ=WEEKLY")
    if freq not in _FREQUENCIES:
        raise RecurrenceError(f"FREQ must be DAILY or WEEKLY, not {freq}")
    if "COUNT" in fields and "UNTIL" in fields:
        raise RecurrenceError("a recurrence rule has COUNT or UNTIL, not both")
    if "COUNT" not in fields and "UNTIL" not in fields:
        raise RecurrenceError("a recurrence rule needs COUNT or UNTIL: an endless series cannot be booked")
    byday: tuple[str, ...] = ()
    if "BYDAY" in fields:
        if freq != "WEEKLY":
            raise RecurrenceError("BYDAY is supported with FREQ=WEEKLY only")
        byday = tuple(fields["BYDAY"].split(","))
        unknown = [day for day in byday if day not in _WEEKDAYS]
        if unknown:
            raise RecurrenceError(f"BYDAY takes MO, TU, WE, TH, FR, SA, SU; not {', '.join(unknown)}")
        if len(set(byday)) != len(byday):
            raise RecurrenceError("BYDAY names a weekday twice")
    return Rule(
        freq=freq,
        interval=_positive("INTERVAL", fields["INTERVAL"], 366) if "INTERVAL" in fields else 1,
        count=_positive("COUNT", fields["COUNT"], MAX_OCCURRENCES) if "COUNT" in fields else None,
        until=_until(fields["UNTIL"]) if "UNTIL" in fields else None,
        byday=byday,
    )


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"


def expand(
    starts_at: datetime,
    ends_at: datetime,
    zone: ZoneInfo,
    rule: Rule | None,
    exdates: frozenset[date] = frozenset(),
) -> list[Slot]:
    """The occurrences of a series, in UTC, in order (a single slot without a rule).

    `starts_at`/`ends_at` are the first occurrence (aware). Each occurrence lasts `ends_at - starts_at`;
    `exdates` are local dates (in `zone`) that have no occurrence.
    """
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise RecurrenceError("start and end need a time zone")
    duration = ends_at - starts_at
    if rule is None:
        return [Slot(starts_at.astimezone(UTC), starts_at.astimezone(UTC), ends_at.astimezone(UTC))]
    first = starts_at.astimezone(zone)
    limit = first + MAX_SPAN
    until: datetime | None = None
    if isinstance(rule.until, datetime):
        until = rule.until.astimezone(zone)
    elif rule.until is not None:
        until = datetime.combine(rule.until, time(23, 59, 59), tzinfo=zone)
    if until is not None and until > limit:
        raise RecurrenceError(Text("series_too_long_until", years=MAX_SPAN.days // 365, limit=_local(limit, zone)))
    generator = du.rrule(
        _FREQUENCIES[rule.freq],
        dtstart=first,
        interval=rule.interval,
        count=rule.count,
        until=until,
        byweekday=[_WEEKDAYS[day] for day in rule.byday] or None,
        cache=False,
    )
    slots: list[Slot] = []
    for index, local_start in enumerate(generator):
        if index >= MAX_OCCURRENCES:
            raise RecurrenceError(Text("too_many_occurrences", limit=MAX_OCCURRENCES))
        if local_start > limit:
            raise RecurrenceError(Text("series_too_long", years=MAX_SPAN.days // 365, limit=_local(limit, zone)))
        if local_start.date() in exdates:
            continue
        start = local_start.astimezone(UTC)
        slots.append(Slot(start, start, start + duration))
    if not slots:
        raise RecurrenceError(Text("recurrence_empty"))
    return slots
