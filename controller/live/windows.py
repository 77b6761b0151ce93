"""A school's viewing windows: whether parents may watch now, and when the cameras next open.

Windows are weekday + [start, end) minutes of the local day in the school's time zone, so 07:30-16:30 stays
07:30-16:30 whatever the UTC offset; a holiday closes the whole local date. No window at all means closed
(fail closed: a school opens its cameras by setting hours).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

LOOKAHEAD_DAYS = 62
"""How far ahead `next_opening` looks (a summer break of holidays fits)."""


@dataclass(frozen=True)
class Window:
    weekday: int
    """0 = Monday."""
    start_minute: int
    end_minute: int

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError("weekday is 0 (Monday) to 6 (Sunday)")
        if not 0 <= self.start_minute < self.end_minute <= 24 * 60:
            raise ValueError("a window starts before it ends, within one day (00:00-24:00)")

    def label(self) -> str:
        return f"{_hhmm(self.start_minute)}-{_hhmm(self.end_minute)}"


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_hhmm(value: str) -> int:
    """Minutes of the day from HH:MM (24:00 allowed as an end)."""
    hours, sep, minutes = value.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"{value!r} is not a time HH:MM")
    total = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or total > 24 * 60:
        raise ValueError(f"{value!r} is not a time of day")
    return total


@dataclass(frozen=True)
class Schedule:
    zone: ZoneInfo
    windows: tuple[Window, ...]
    holidays: frozenset[date]

    @classmethod
    def of(cls, time_zone: str, windows: Iterable[Window], holidays: Iterable[date]) -> Schedule:
        return cls(ZoneInfo(time_zone), tuple(windows), frozenset(holidays))

    def _local_minute(self, now: datetime) -> tuple[date, int]:
        local = now.astimezone(self.zone)
        return local.date(), local.hour * 60 + local.minute

    def open_at(self, now: datetime) -> bool:
        day, minute = self._local_minute(now)
        if day in self.holidays:
            return False
        return any(w.weekday == day.weekday() and w.start_minute <= minute < w.end_minute for w in self.windows)

    def closes_at(self, now: datetime) -> datetime | None:
        """When the window open at `now` ends (None when closed now)."""
        day, minute = self._local_minute(now)
        if day in self.holidays:
            return None
        ends = [
            w.end_minute for w in self.windows if w.weekday == day.weekday() and w.start_minute <= minute < w.end_minute
        ]
        return self._at(day, max(ends)) if ends else None

    def next_opening(self, now: datetime) -> datetime | None:
        """The next time a window opens after `now` (None: no window in the next LOOKAHEAD_DAYS)."""
        day, minute = self._local_minute(now)
        for offset in range(LOOKAHEAD_DAYS + 1):
            current = day + timedelta(days=offset)
            if current in self.holidays:
                continue
            starts = sorted(
                w.start_minute
                for w in self.windows
                if w.weekday == current.weekday() and (offset > 0 or w.start_minute > minute)
            )
            if starts:
                return self._at(current, starts[0])
        return None

    def _at(self, day: date, minute: int) -> datetime:
        if minute >= 24 * 60:
            return datetime.combine(day + timedelta(days=1), time(0), self.zone)
        return datetime.combine(day, time(minute // 60, minute % 60), self.zone)
