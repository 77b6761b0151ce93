"""Availability: merged free intervals on a hand-built week, as a function and through the API."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from controller.bookings.availability import Hours, free, merge, windows
from tests.controller.bookings.conftest import Site, as_user
from tests.controller.conftest import Client

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=HCM).astimezone(UTC)


def test_free_is_working_hours_minus_merged_busy_time() -> None:
    assert merge([(at(5, 9), at(5, 10)), (at(5, 10), at(5, 11)), (at(5, 8), at(5, 8, 30))]) == [
        (at(5, 8), at(5, 8, 30)), (at(5, 9), at(5, 11)),
    ]  # fmt: skip
    working = windows(date(2026, 1, 5), 7, Hours(time(8), time(12), frozenset({0, 1, 2})), HCM)
    assert working == [(at(5, 8), at(5, 12)), (at(6, 8), at(6, 12)), (at(7, 8), at(7, 12))]
    busy = [
        (at(5, 7), at(5, 9)),  # starts before the day
        (at(5, 10), at(5, 10, 20)),  # leaves 10:20-12:00
        (at(5, 9, 30), at(5, 10, 10)),  # overlaps the one above
        (at(6, 8), at(6, 12)),  # the whole of Tuesday
        (at(7, 11, 50), at(7, 13)),  # leaves a 10-minute gap? no: 08:00-11:50 on Wednesday
    ]
    assert free(working, busy, timedelta(minutes=30)) == [
        (at(5, 9), at(5, 9, 30)),
        (at(5, 10, 20), at(5, 12)),
        (at(7, 8), at(7, 11, 50)),
    ]
    assert free(working, busy, timedelta(minutes=31)) == [(at(5, 10, 20), at(5, 12)), (at(7, 8), at(7, 11, 50))]


async def test_availability_of_rooms_at_two_schools_over_a_week(client: Client, site: Site) -> None:
    booker = await as_user(client, site.booker)
    for room, start, end in (
        (site.room, "2026-01-06T08:00:00+07:00", "2026-01-06T09:30:00+07:00"),
        (site.other_room, "2026-01-06T09:00:00+07:00", "2026-01-06T10:00:00+07:00"),
        (site.other_room, "2026-01-07T13:00:00+07:00", "2026-01-07T17:00:00+07:00"),
        (site.room2, "2026-01-06T10:00:00+07:00", "2026-01-06T14:00:00+07:00"),  # not asked about
    ):
        status, body = await booker.send(
            "POST", "/api/bookings", {"title": "x", "mode": "meeting", "host_room": room, "start": start, "end": end}
        )
        assert status == 201, body
    status, answer = await booker.get(
        "/api/availability",
        rooms=f"{site.room},{site.other_room}",
        week="2026-01-06",
        days="2",
        day_start="08:00",
        day_end="17:00",
        weekdays="0,1,2,3,4",
    )
    assert status == 200, answer
    assert answer["time_zone"] == "Asia/Ho_Chi_Minh"
    assert [(s["start_local"], s["end_local"]) for s in answer["slots"]] == [
        ("2026-01-06T10:00:00+07:00", "2026-01-06T17:00:00+07:00"),
        ("2026-01-07T08:00:00+07:00", "2026-01-07T13:00:00+07:00"),
    ]
    teacher = await as_user(client, site.world.teacher)
    status, answer = await teacher.get("/api/availability", rooms=f"{site.room},{site.other_room}", week="2026-01-06")
    assert status == 403 and "Sao Mai" in str(answer["error"])
