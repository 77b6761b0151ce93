"""The bookings API on both backends: conflicts, series, occurrences, policies, access and validation."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from controller import state
from controller.db.models import AuditEntry
from tests.controller.bookings.conftest import Site, as_user
from tests.controller.conftest import Client

# The manual clock starts at 2026-01-05 01:00 UTC: Monday 08:00 in Asia/Ho_Chi_Minh.
TUE_09 = "2026-01-06T09:00:00+07:00"
TUE_10 = "2026-01-06T10:00:00+07:00"


def booking(host: int, *, start: str = TUE_09, end: str = TUE_10, **extra: Any) -> dict[str, Any]:
    return {"title": "Họp giao ban", "mode": "meeting", "host_room": host, "start": start, "end": end, **extra}


async def test_conflicts_on_host_and_participant_rooms_name_the_room_and_booking(client: Client, site: Site) -> None:
    booker = await as_user(client, site.booker)
    status, first = await booker.send("POST", "/api/bookings", booking(site.room, participant_rooms=[site.other_room]))
    assert status == 201, first
    assert first["start"] == "2026-01-06T02:00:00+00:00" and first["start_local"] == TUE_09

    # The same host room, overlapping by half an hour.
    status, body = await booker.send(
        "POST", "/api/bookings", booking(site.room, start="2026-01-06T09:30:00+07:00", end="2026-01-06T11:00:00+07:00")
    )
    assert status == 409
    assert body["error"] == (
        f"room 'Phòng họp A' is already booked by 'Họp giao ban' (booking {first['id']}) "
        "on 2026-01-06 from 09:00 to 10:00 (Asia/Ho_Chi_Minh)"
    )
    # A participant room of the first booking, used as another booking's participant (given in UTC).
    status, body = await booker.send(
        "POST",
        "/api/bookings",
        booking(site.room2, participant_rooms=[site.other_room], start="2026-01-06T02:59:00Z", end="2026-01-06T04:00Z"),
    )
    assert status == 409 and "'Phòng họp Sao Mai'" in str(body["error"]) and "09:00 to 10:00" in str(body["error"])
    # Touching intervals do not clash.
    status, body = await booker.send(
        "POST", "/api/bookings", booking(site.room, start=TUE_10, end="2026-01-06T11:00+07:00")
    )
    assert status == 201, body


async def test_series_occurrences_conflict_and_stay_at_local_time(
    client: Client, site: Site, app: web.Application
) -> None:
    teacher = await as_user(client, site.world.teacher)
    weekly = booking(
        site.room,
        start="2026-01-07T08:00:00+07:00",
        end="2026-01-07T08:45:00+07:00",
        mode="class",
        recurrence={"rule": "FREQ=WEEKLY;BYDAY=WE;COUNT=6", "exdates": ["2026-01-21"]},
    )
    status, series = await teacher.send("POST", "/api/bookings", weekly)
    assert status == 201, series
    occurrences = series["occurrences"]
    assert isinstance(occurrences, list) and len(occurrences) == 5
    assert {o["start_local"][11:] for o in occurrences} == {"08:00:00+07:00"}
    assert "2026-01-21" not in {o["start_local"][:10] for o in occurrences}

    # A single booking on the fourth Wednesday clashes with the series; on the excluded date it does not.
    status, body = await teacher.send(
        "POST", "/api/bookings", booking(site.room, start="2026-01-28T08:30:00+07:00", end="2026-01-28T09:00:00+07:00")
    )
    assert status == 409 and "on 2026-01-28 from 08:00 to 08:45" in str(body["error"])
    status, _ = await teacher.send(
        "POST", "/api/bookings", booking(site.room, start="2026-01-21T08:00:00+07:00", end="2026-01-21T09:00:00+07:00")
    )
    assert status == 201
    # A new series that meets an existing booking in one occurrence is refused as a whole.
    status, body = await teacher.send(
        "POST",
        "/api/bookings",
        booking(site.room, start="2026-01-14T08:40:00+07:00", end="2026-01-14T09:00:00+07:00",
                recurrence={"rule": "FREQ=DAILY;COUNT=3"}),
    )  # fmt: skip
    assert status == 409 and "2026-01-14 from 08:00 to 08:45" in str(body["error"])
    async with app[state.DB]() as session:
        actions = list((await session.execute(select(AuditEntry.action))).scalars())
    assert actions.count("booking.create") == 2


async def test_edit_and_cancel_one_occurrence_and_the_series(client: Client, site: Site, app: web.Application) -> None:
    staff = await as_user(client, site.staff)
    daily = booking(site.room, recurrence={"rule": "FREQ=DAILY;COUNT=4"})
    status, series = await staff.send("POST", "/api/bookings", daily)
    assert status == 201, series
    booking_id = series["id"]
    occurrences: list[dict[str, Any]] = series["occurrences"]
    second, third = occurrences[1]["id"], occurrences[2]["id"]
    status, other = await staff.send(
        "POST", "/api/bookings", booking(site.room2, start="2026-01-07T13:00+07:00", end="2026-01-07T14:00+07:00")
    )
    assert status == 201

    # Move the second occurrence (Wed) to the afternoon: clashes in room2? No: it stays in room A.
    status, moved = await staff.send(
        "PATCH", f"/api/bookings/{booking_id}/occurrences/{second}",
        {"start": "2026-01-07T13:00:00+07:00", "end": "2026-01-07T14:00:00+07:00"},
    )  # fmt: skip
    assert status == 200, moved
    # Adding room2 to the series now clashes with the other booking on Wednesday afternoon.
    status, body = await staff.send("PATCH", f"/api/bookings/{booking_id}", {"participant_rooms": [site.room2]})
    assert status == 409 and f"(booking {other['id']})" in str(body["error"])
    # Cancel the third occurrence; its slot is free for someone else.
    status, cancelled = await staff.send("POST", f"/api/bookings/{booking_id}/occurrences/{third}/cancel")
    assert status == 200 and [o["cancelled"] for o in cancelled["occurrences"]] == [False, False, True, False]
    status, _ = await staff.send(
        "POST", "/api/bookings", booking(site.room, start="2026-01-08T09:00+07:00", end="2026-01-08T10:00+07:00")
    )
    assert status == 201
    # The series moves an hour later: the moved occurrence keeps its time, the cancelled one stays cancelled.
    status, edited = await staff.send(
        "PATCH", f"/api/bookings/{booking_id}",
        {"start": "2026-01-06T10:00:00+07:00", "end": "2026-01-06T11:00:00+07:00", "title": "Tập huấn"},
    )  # fmt: skip
    assert status == 200, edited
    starts = [(o["start_local"], o["cancelled"]) for o in edited["occurrences"]]
    assert starts == [
        ("2026-01-06T10:00:00+07:00", False),
        ("2026-01-07T13:00:00+07:00", False),
        ("2026-01-08T10:00:00+07:00", True),  # moves with the series, still cancelled
        ("2026-01-09T10:00:00+07:00", False),
    ]
    # Moving the series into the past would leave nothing from now on.
    status, body = await staff.send(
        "PATCH", f"/api/bookings/{booking_id}", {"start": "2026-01-01T10:00:00+07:00", "end": "2026-01-01T11:00+07:00"}
    )
    assert status == 422 and "no occurrence from now on" in str(body["error"]), body
    # Cancelling the series frees its rooms.
    status, gone = await staff.send("POST", f"/api/bookings/{booking_id}/cancel")
    assert status == 200 and gone["cancelled"] is True
    status, listed = await staff.get(
        f"/api/rooms/{site.room}/bookings", **{"from": "2026-01-05T00:00:00Z", "to": "2026-01-12T00:00:00Z"}
    )
    assert status == 200 and [o["title"] for o in listed["occurrences"]] == ["Họp giao ban"]
    status, body = await staff.send("POST", f"/api/bookings/{booking_id}/cancel")
    assert status == 409 and body["error"] == "this booking is cancelled"
    async with app[state.DB]() as session:
        query = select(AuditEntry.action).where(AuditEntry.target == f"booking:{booking_id}").order_by(AuditEntry.id)
        actions = list((await session.execute(query)).scalars())
    assert actions == [
        "booking.create", "booking.occurrence.move", "booking.occurrence.cancel", "booking.update", "booking.cancel",
    ]  # fmt: skip


async def test_room_policies_are_enforced(client: Client, site: Site) -> None:
    admin = await as_user(client, site.world.admin)
    status, policy = await admin.send(
        "PUT", f"/api/rooms/{site.room}/policy", {"booking_window_days": 7, "max_duration_minutes": 60, "capacity": 10}
    )
    assert status == 200 and policy == {"booking_window_days": 7, "max_duration_minutes": 60, "capacity": 10}
    cases = [
        (booking(site.room, start="2026-01-20T09:00+07:00", end="2026-01-20T10:00+07:00"), "at most 7 days ahead"),
        (booking(site.room, end="2026-01-06T10:30:00+07:00"), "at most 60 minutes at a time, not 90"),
        (booking(site.room, attendees=11), "holds 10 people, not 11"),
        (booking(site.room, start="2026-01-04T09:00+07:00", end="2026-01-04T10:00+07:00"), "starts in the past"),
        (booking(site.room, recurrence={"rule": "FREQ=DAILY;COUNT=10"}), "at most 7 days ahead"),
    ]
    for body, message in cases:
        status, answer = await admin.send("POST", "/api/bookings", body)
        assert status == 422 and message in str(answer["error"]), (body, answer)
    status, _ = await admin.send("PATCH", f"/api/rooms/{site.room}", {"active": False})
    assert status == 200
    status, answer = await admin.send("POST", "/api/bookings", booking(site.room))
    assert status == 422 and "not in use" in str(answer["error"])


async def test_validation_errors_say_what_is_wrong(client: Client, site: Site) -> None:
    booker = await as_user(client, site.booker)
    cases: list[tuple[object, int, str]] = [
        (booking(site.room, start="2026-01-06T09:00:00"), 422, "start: Input should have timezone info"),
        (booking(site.room, end="2026-01-06T08:00:00+07:00"), 422, "end must be after start"),
        (booking(site.room, end="2026-01-09T08:00:00+07:00"), 422, "at most 12 hours"),
        ({**booking(site.room), "host_room": "5"}, 422, "host_room: Input should be a valid integer"),
        ({**booking(site.room), "colour": "red"}, 422, "colour: Extra inputs are not permitted"),
        ({**booking(site.room), "mode": "party"}, 422, "mode: Input should be"),
        (booking(999999), 422, "no such room: 999999"),
        (booking(site.room, participant_rooms=[site.room]), 422, "a room appears twice"),
        (booking(site.room, recurrence={"rule": "FREQ=MONTHLY;COUNT=2"}), 422, "FREQ must be DAILY or WEEKLY"),
        (booking(site.room, recurrence={"rule": "FREQ=DAILY"}), 422, "needs COUNT or UNTIL"),
        (booking(site.room, recurrence={"rule": "FREQ=DAILY;COUNT=1001"}), 422, "COUNT must be a whole number from 1"),
        (booking(site.room, recurrence={"rule": "FREQ=DAILY;UNTIL=20290101"}), 422, "at most 2 years"),
        (booking(site.room, recurrence={"rule": "FREQ=DAILY;BYDAY=MO;COUNT=2"}), 422, "BYDAY is supported with"),
        ([1, 2], 422, "Input should be an object"),
    ]
    for body, status, message in cases:
        got, answer = await booker.send("POST", "/api/bookings", body)
        assert got == status and message in str(answer["error"]), (body, answer)
    response = await booker.client.post("/api/bookings", data=b"{not json", headers=booker._headers())
    assert response.status == 400 and (await response.json())["error"] == "the request body is not valid JSON"
    status, answer = await booker.get(f"/api/rooms/{site.room}/bookings", **{"from": "2026-01-05T00:00:00"})
    assert status == 422 and "to: Field required" in str(answer["error"])
    status, answer = await booker.get("/api/availability", rooms="1,x", week="2026-01-05")
    assert status == 422 and "rooms.1" in str(answer["error"])


async def test_who_may_book_and_manage_which_rooms(client: Client, site: Site) -> None:
    teacher = await as_user(client, site.world.teacher)
    status, body = await teacher.send("POST", "/api/bookings", booking(site.room, participant_rooms=[site.other_room]))
    assert status == 403 and body["error"] == f"you may not book room 'Phòng họp Sao Mai' (room {site.other_room})"
    status, _ = await teacher.get(f"/api/units/{site.world.other_school}/rooms")
    assert status == 403
    status, _ = await teacher.send("POST", f"/api/units/{site.world.school}/rooms", {"name": "X"})
    assert status == 403
    status, mine = await teacher.send("POST", "/api/bookings", booking(site.room))
    assert status == 201

    technician = await as_user(client, site.world.technician)
    status, room = await technician.send("POST", f"/api/units/{site.world.school}/rooms", {"name": "Phòng mới"})
    assert status == 201, room
    status, _ = await technician.send("POST", f"/api/units/{site.world.other_school}/rooms", {"name": "Phòng mới"})
    assert status == 403
    status, body = await technician.send("POST", f"/api/units/{site.world.school}/rooms", {"name": "Phòng mới"})
    assert status == 409 and "already has a room named" in str(body["error"])

    other = await as_user(client, site.world.other_technician)
    status, _ = await other.get(f"/api/bookings/{mine['id']}")
    assert status == 403
    status, _ = await other.send("POST", f"/api/bookings/{mine['id']}/cancel")
    assert status == 403
    booker = await as_user(client, site.booker)
    status, got = await booker.get(f"/api/bookings/{mine['id']}")
    assert status == 200 and got["organizer_id"] == mine["organizer_id"]
    status, listed = await booker.get(
        f"/api/units/{site.world.school}/bookings",
        **{"from": "2026-01-05T00:00:00Z", "to": "2026-01-12T00:00:00+00:00"},
    )
    assert status == 200 and len(listed["occurrences"]) == 1
