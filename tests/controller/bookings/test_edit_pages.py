"""Editing a series and moving one occurrence from the booking pages: the form comes filled in, the change goes
through the service (conflicts, rights), refusals are shown in the reader's language, and the API sees the result."""

from __future__ import annotations

import re
from typing import Any

from tests.controller.bookings.conftest import Site, as_user
from tests.controller.conftest import ORIGIN, Client


def _alert(page: str) -> str:
    found = re.search(r'role="alert"[^>]*>(.*?)</p>', page, re.S)
    assert found is not None, page
    return found.group(1).replace("&#39;", "'")


def _edit_form(token: str, room: int, **changes: str) -> dict[str, str]:
    values = {
        "csrf_token": token,
        "title": "Lớp Toán (đổi giờ)",
        "agenda": "",
        "mode": "class",
        "host_room": str(room),
        "date": "2026-01-06",
        "start_time": "10:00",
        "end_time": "11:00",
        "repeat": "keep",
        "count": "",
        "until": "",
    }
    values.update(changes)
    return values


async def test_edit_the_series_and_move_one_occurrence_from_the_pages(client: Client, site: Site) -> None:
    booker = await as_user(client, site.booker)
    series: dict[str, Any] = {
        "title": "Lớp Toán",
        "mode": "class",
        "host_room": site.room,
        "start": "2026-01-06T09:00:00+07:00",
        "end": "2026-01-06T10:00:00+07:00",
        "recurrence": {"rule": "FREQ=WEEKLY;BYDAY=TU;COUNT=3"},
    }
    status, made = await booker.send("POST", "/api/bookings", series)
    assert status == 201, made
    booking_id = made["id"]
    other = {**series, "title": "Họp tổ", "start": "2026-01-14T09:00:00+07:00", "end": "2026-01-14T10:00:00+07:00"}
    del other["recurrence"]
    assert (await booker.send("POST", "/api/bookings", other))[0] == 201

    form = await (await client.get(f"/bookings/{booking_id}/edit")).text()
    assert 'value="Lớp Toán"' in form and 'value="keep" selected' in form and "FREQ=WEEKLY;COUNT=3;BYDAY=TU" in form
    assert f'action="/bookings/{booking_id}/edit"' in form and 'value="09:00"' in form

    bad = await client.post(
        f"/bookings/{booking_id}/edit", data=_edit_form(booker.token, site.room, end_time="09:00"), headers=ORIGIN
    )
    assert bad.status == 422 and "Giờ kết thúc phải sau giờ bắt đầu." in await bad.text()

    saved = await client.post(
        f"/bookings/{booking_id}/edit", data=_edit_form(booker.token, site.room), headers=ORIGIN, allow_redirects=False
    )
    assert saved.status == 303 and saved.headers["Location"] == f"/bookings/{booking_id}?updated=1"
    status, after = await booker.get(f"/api/bookings/{booking_id}")
    assert after["title"] == "Lớp Toán (đổi giờ)" and after["recurrence"]["rule"] == "FREQ=WEEKLY;COUNT=3;BYDAY=TU"
    assert [o["start_local"][11:16] for o in after["occurrences"]] == ["10:00", "10:00", "10:00"]
    second = after["occurrences"][1]["id"]

    move = f"/bookings/{booking_id}/occurrences/{second}/move"
    clash = await client.post(
        move,
        data={"csrf_token": booker.token, "date": "2026-01-14", "start_time": "09:30", "end_time": "10:30"},
        headers=ORIGIN,
    )
    assert clash.status == 409 and "đã được đặt cho 'Họp tổ'" in _alert(await clash.text())
    moved = await client.post(
        move,
        data={"csrf_token": booker.token, "date": "2026-01-15", "start_time": "08:00", "end_time": "09:00"},
        headers=ORIGIN,
        allow_redirects=False,
    )
    assert moved.status == 303
    status, after = await booker.get(f"/api/bookings/{booking_id}")
    occurrence = next(o for o in after["occurrences"] if o["id"] == second)
    assert occurrence["detached"] and occurrence["start_local"].startswith("2026-01-15T08:00")
    page = await (await client.get(f"/bookings/{booking_id}?updated=1")).text()
    assert "Đã cập nhật lịch." in page and "Đã dời" in page

    teacher = await as_user(client, site.world.teacher)  # in the host school's scope, but not allowed to change it
    refused = await client.post(
        f"/bookings/{booking_id}/edit?lang=en", data=_edit_form(teacher.token, site.room), headers=ORIGIN
    )
    assert refused.status == 403 and "only the organizer" in _alert(await refused.text())
