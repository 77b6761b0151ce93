"""The booking pages: the form books and refuses clashes next to the form keeping what was typed, the week
calendars show bookings in local time, cancelling one occurrence or a series, my sessions, and where each role
lands after signing in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from aiohttp import web

from controller import accounts, state
from controller.db.models import Role
from controller.people.models import Child, Guardianship, SchoolClass
from tests.controller.conftest import ORIGIN, PASSWORD, Client, World, csrf_token, seed


@dataclass
class Rooms:
    world: World
    room: int
    room2: int
    other_room: int


async def _sign_in(client: Client, username: str) -> tuple[str, str]:
    """Sign in through the form as a browser would (next=/); returns (where it was sent, the CSRF token)."""
    response = await client.post(
        "/signin", data={"username": username, "password": PASSWORD, "next": "/"}, headers=ORIGIN, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    return response.headers["Location"], await csrf_token(client)


async def _rooms(client: Client, app: web.Application) -> Rooms:
    world = await seed(app)
    now = app[state.CLOCK].now()
    async with app[state.DB].begin() as session:
        for username, role, unit in (("booker", Role.DEPARTMENT_BOOKER, world.department),):
            await accounts.create_user(
                session, app[state.PASSWORDS], username=username, password=PASSWORD, role=role, unit_id=unit, now=now
            )
    _, token = await _sign_in(client, world.admin)
    ids = []
    for unit, name in ((world.school, "Phòng họp A"), (world.school, "Phòng <i>2</i>"), (world.other_school, "P SM")):
        response = await client.post(
            f"/api/units/{unit}/rooms",
            json={"name": name, "capacity": 40},
            headers={**ORIGIN, "X-CSRF-Token": token},
        )
        assert response.status == 201, await response.text()
        ids.append(int((await response.json())["id"]))
    return Rooms(world, *ids)


def _form(token: str, room: int, **changes: str | list[str]) -> dict[str, str | list[str]]:
    values: dict[str, str | list[str]] = {
        "csrf_token": token,
        "title": "Họp giao ban <script>x</script>",
        "agenda": "Một\nHai",
        "mode": "meeting",
        "host_room": str(room),
        "date": "2026-01-06",
        "start_time": "09:00",
        "end_time": "10:00",
        "repeat": "none",
        "count": "",
        "until": "",
    }
    values.update(changes)
    return values


async def _post(client: Client, values: dict[str, str | list[str]]) -> web.Response | object:
    data = [(k, v) for k, value in values.items() for v in (value if isinstance(value, list) else [value])]
    return await client.post("/bookings", data=data, headers=ORIGIN, allow_redirects=False)


async def test_book_through_the_form_see_it_in_the_week_and_a_clash_is_explained(
    client: Client, app: web.Application
) -> None:
    rooms = await _rooms(client, app)
    landing, token = await _sign_in(client, "booker")
    assert landing == "/my/sessions"

    form = await client.get(f"/bookings/new?room={rooms.room}")
    page = await form.text()
    assert form.status == 200 and f'<option value="{rooms.room}" selected>' in page
    assert "Phòng &lt;i&gt;2&lt;/i&gt;" in page and "<i>2</i>" not in page

    made = await client.post(
        "/bookings",
        data=[*_form(token, rooms.room).items(), ("participant_rooms", str(rooms.other_room))],
        headers=ORIGIN,
        allow_redirects=False,
    )
    assert made.status == 303, await made.text()
    booking_path = made.headers["Location"].split("?")[0]
    booking = await (await client.get(booking_path)).text()
    assert "Họp giao ban &lt;script&gt;" in booking and "<script>" not in booking
    assert "P SM" in booking and "09:00–10:00" in booking

    week = await client.get(f"/rooms/{rooms.other_room}/week?start=2026-01-07")
    text = await week.text()
    assert week.status == 200 and "Tuần từ 2026-01-05" in text and "09:00–10:00" in text
    assert "Họp giao ban &lt;script&gt;" in text and "?start=2025-12-29" in text and "?start=2026-01-12" in text
    empty = await (await client.get(f"/rooms/{rooms.other_room}/week?start=2026-01-12")).text()
    assert "Họp giao ban" not in empty
    unit_week = await (await client.get(f"/units/{rooms.world.school}/week?start=2026-01-05&lang=en")).text()
    assert "Week of 2026-01-05" in unit_week and "Phòng họp A" in unit_week and "Tuesday 06/01" in unit_week

    clash = await client.post(
        "/bookings",
        data=[
            *_form(token, rooms.room2, title="Lớp dạy mẫu", start_time="09:30", end_time="11:00").items(),
            ("participant_rooms", str(rooms.other_room)),
        ],
        headers=ORIGIN,
        allow_redirects=False,
    )
    again = await clash.text()
    assert clash.status == 409
    message = re.search(r'<p class="error" role="alert" id="form-error">(.*?)</p>', again, re.S)
    assert message is not None and "P SM" in message.group(1) and "Họp giao ban" in message.group(1)
    assert 'value="Lớp dạy mẫu"' in again and 'value="09:30"' in again and 'value="11:00"' in again
    assert f'value="{rooms.other_room}" checked' in again

    bad = await client.post(
        "/bookings", data=_form(token, rooms.room, end_time="08:00", title="Sai giờ"), headers=ORIGIN
    )
    assert bad.status == 422 and "The end must be after the start." in await bad.text()  # English remembered

    sessions = await (await client.get("/my/sessions")).text()
    assert "Họp giao ban &lt;script&gt;" in sessions and "Lớp dạy mẫu" not in sessions


async def test_a_weekly_series_cancel_one_then_all(client: Client, app: web.Application) -> None:
    rooms = await _rooms(client, app)
    _, token = await _sign_in(client, "booker")
    made = await client.post(
        "/bookings",
        data=_form(token, rooms.room, title="Lớp tiếng Anh", repeat="weekly", count="3", mode="class"),
        headers=ORIGIN,
        allow_redirects=False,
    )
    assert made.status == 303, await made.text()
    path = made.headers["Location"].split("?")[0]
    page = await (await client.get(path)).text()
    cancels = re.findall(r'action="(/bookings/\d+/occurrences/\d+/cancel)"', page)
    assert len(cancels) == 3 and "FREQ=WEEKLY;COUNT=3" in page
    one = await client.post(cancels[1], data={"csrf_token": token}, headers=ORIGIN, allow_redirects=False)
    assert one.status == 303
    week2 = await (await client.get(f"/rooms/{rooms.room}/week?start=2026-01-13")).text()
    week3 = await (await client.get(f"/rooms/{rooms.room}/week?start=2026-01-20")).text()
    assert "Lớp tiếng Anh" not in week2 and "Lớp tiếng Anh" in week3
    no_token = await client.post(f"{path}/cancel", headers=ORIGIN, allow_redirects=False)
    assert no_token.status == 403
    everything = await client.post(f"{path}/cancel", data={"csrf_token": token}, headers=ORIGIN, allow_redirects=False)
    assert everything.status == 303
    assert "Lớp tiếng Anh" not in await (await client.get(f"/rooms/{rooms.room}/week?start=2026-01-20")).text()
    assert "Đã hủy" in await (await client.get(path)).text()


async def test_teachers_book_their_school_only_and_each_role_lands_on_a_page_it_may_see(
    client: Client, app: web.Application
) -> None:
    rooms = await _rooms(client, app)
    landing, token = await _sign_in(client, rooms.world.teacher)
    assert landing == "/my/sessions" and (await client.get(landing)).status == 200
    page = await (await client.get("/bookings/new")).text()
    assert "Phòng họp A" in page and "P SM" not in page
    refused = await client.post("/bookings", data=_form(token, rooms.other_room), headers=ORIGIN)
    assert refused.status == 422 and "Hãy chọn phòng chủ trì" in await refused.text()
    smuggled = await client.post(
        "/bookings",
        data=[*_form(token, rooms.room).items(), ("participant_rooms", str(rooms.other_room))],
        headers=ORIGIN,
    )
    assert smuggled.status == 403 and "P SM" in await smuggled.text()
    assert (await client.get(f"/rooms/{rooms.other_room}/week")).status == 403

    now = app[state.CLOCK].now()
    async with app[state.DB].begin() as session:
        parent = await accounts.create_user(
            session,
            app[state.PASSWORDS],
            username="me",
            password=PASSWORD,
            role=Role.PARENT,
            unit_id=rooms.world.school,
            now=now,
        )
        klass = SchoolClass(unit_id=rooms.world.school, school_year="2025-2026", name="Lá 1", created_at=now)
        session.add(klass)
        await session.flush()
        child = Child(unit_id=rooms.world.school, code="HS1", full_name="Bé <b>An</b>",
                      date_of_birth=date(2021, 1, 1), class_id=klass.id, created_at=now)  # fmt: skip
        session.add(child)
        await session.flush()
        session.add(Guardianship(child_id=child.id, user_id=parent.id, relationship="mother", created_at=now))
    landing, _ = await _sign_in(client, "me")
    assert landing == "/my/children"
    children = await client.get(landing)
    assert children.status == 200 and "Bé &lt;b&gt;An&lt;/b&gt;" in await children.text()
    assert (await client.get("/my/sessions")).status == 403
    assert (await client.get("/bookings/new")).status == 403

    landing, _ = await _sign_in(client, rooms.world.technician)
    assert landing == "/"
