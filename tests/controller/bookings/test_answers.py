"""Real answers of the rooms and bookings API match the models the OpenAPI document gives for them (models that
forbid unknown keys: an answer that grows a field without its description fails here)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from controller.bookings.answers import AvailabilityOut, BookingOut, ListingOut, PolicyOut, RoomOut, RoomsOut
from tests.controller.bookings.conftest import Site, as_user
from tests.controller.conftest import Client


async def test_answers_match_their_documented_models(client: Client, site: Site) -> None:
    admin = await as_user(client, site.world.admin)
    series: dict[str, Any] = {
        "title": "Lớp Văn",
        "mode": "class",
        "host_room": site.room,
        "participant_rooms": [site.other_room],
        "start": "2026-01-06T09:00:00+07:00",
        "end": "2026-01-06T10:00:00+07:00",
        "recurrence": {"rule": "FREQ=WEEKLY;COUNT=2", "exdates": []},
    }
    status, made = await admin.send("POST", "/api/bookings", series)
    assert status == 201
    booking_id, first = made["id"], made["occurrences"][0]["id"]
    answers: list[tuple[type[BaseModel], tuple[int, dict[str, Any]]]] = [
        (RoomsOut, await admin.get(f"/api/units/{site.world.school}/rooms")),
        (RoomOut, await admin.get(f"/api/rooms/{site.room}")),
        (RoomOut, await admin.send("PATCH", f"/api/rooms/{site.room}", {"capacity": 50})),
        (PolicyOut, await admin.get(f"/api/rooms/{site.room}/policy")),
        (BookingOut, (status, made)),
        (BookingOut, await admin.get(f"/api/bookings/{booking_id}")),
        (
            BookingOut,
            await admin.send(
                "PATCH",
                f"/api/bookings/{booking_id}/occurrences/{first}",
                {"start": "2026-01-06T13:00:00+07:00", "end": "2026-01-06T14:00:00+07:00"},
            ),
        ),
        (
            ListingOut,
            await admin.get(
                f"/api/rooms/{site.room}/bookings",
                **{"from": "2026-01-05T00:00:00+07:00", "to": "2026-01-19T00:00:00+07:00"},
            ),
        ),
        (
            AvailabilityOut,
            await admin.get("/api/availability", rooms=f"{site.room},{site.other_room}", week="2026-01-05"),
        ),
        (BookingOut, await admin.send("POST", f"/api/bookings/{booking_id}/cancel")),
    ]
    for model, (status, body) in answers:
        assert status in (200, 201), (model, body)
        model.model_validate(body)
    listing = ListingOut.model_validate(answers[7][1][1])
    assert [item.start_local.hour for item in listing.occurrences] == [13, 9]
