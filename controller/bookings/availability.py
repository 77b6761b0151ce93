"""Availability: the slots in a span of days when every room of a set is free, within working hours.

Working hours are local times in one time zone (the first room's unit), on chosen weekdays. The answer is the
working windows minus the union of every room's occupancy, as merged half-open intervals, keeping only the
free intervals at least `min_minutes` long. One indexed query for all rooms.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.bookings.conflicts import MAX_DURATION
from controller.bookings.models import RoomOccupancy

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Hours:
    """Working hours: from `day_start` to `day_end` local time on `weekdays` (0 = Monday)."""

    day_start: time
    day_end: time
    weekdays: frozenset[int]


def windows(first_day: date, days: int, hours: Hours, zone: ZoneInfo) -> list[Interval]:
    """The working windows of `days` days from `first_day`, in UTC."""
    found: list[Interval] = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        if day.weekday() not in hours.weekdays:
            continue
        start = datetime.combine(day, hours.day_start, tzinfo=zone).astimezone(UTC)
        end = datetime.combine(day, hours.day_end, tzinfo=zone).astimezone(UTC)
        if end > start:
            found.append((start, end))
    return found


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def free(working: Iterable[Interval], busy: Iterable[Interval], min_length: timedelta) -> list[Interval]:
    """`working` minus `busy`, keeping the pieces at least `min_length` long."""
    taken = merge(busy)
    result: list[Interval] = []
    index = 0
    for start, end in merge(working):
        cursor = start
        while index < len(taken) and taken[index][1] <= cursor:
            index += 1
        probe = index
        while probe < len(taken) and taken[probe][0] < end:
            busy_start, busy_end = taken[probe]
            if busy_start > cursor:
                result.append((cursor, busy_start))
            cursor = max(cursor, busy_end)
            if cursor >= end:
                break
            probe += 1
        if cursor < end:
            result.append((cursor, end))
    return [(start, end) for start, end in result if end - start >= min_length]


async def busy(session: AsyncSession, room_ids: Collection[int], start: datetime, end: datetime) -> list[Interval]:
    """Every occupancy of the rooms overlapping [start, end), clipped to it."""
    query = select(RoomOccupancy.starts_at, RoomOccupancy.ends_at).where(
        RoomOccupancy.room_id.in_(list(room_ids)),
        RoomOccupancy.starts_at >= start - MAX_DURATION,
        RoomOccupancy.starts_at < end,
        RoomOccupancy.ends_at > start,
    )
    rows = (await session.execute(query)).all()
    return [(max(s, start), min(e, end)) for s, e in rows]
