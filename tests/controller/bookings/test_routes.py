"""The rooms and bookings routes, listed from the router: each refuses anonymous callers and callers out of scope."""

from __future__ import annotations

import re

from aiohttp import web

from controller import accounts, state
from controller.db.models import Role
from tests.controller.bookings.conftest import Site, as_user
from tests.controller.conftest import ORIGIN, PASSWORD, Client
from tests.controller.test_routes import BOOKING_ROUTES

MANAGE_ONLY = {
    ("POST", "/api/units/{unit_id}/rooms"),
    ("PATCH", "/api/rooms/{room_id}"),
    ("PUT", "/api/rooms/{room_id}/policy"),
}


def _booking_routes(app: web.Application) -> list[tuple[str, str]]:
    found = []
    for route in app.router.routes():
        canonical = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.resource.canonical if route.resource else "")
        if canonical.startswith(BOOKING_ROUTES):
            found.append((route.method, canonical))
    return found


async def test_every_booking_route_refuses_anonymous_and_out_of_scope_callers(
    client: Client, app: web.Application, site: Site
) -> None:
    routes = _booking_routes(app)
    assert len(routes) == 18  # with the join links, the invitation and the room feed (tests/controller/calendar)
    booker = await as_user(client, site.booker)
    status, made = await booker.send(
        "POST", "/api/bookings",
        {"title": "t", "mode": "meeting", "host_room": site.room, "start": "2026-01-06T09:00+07:00",
         "end": "2026-01-06T10:00+07:00"},
    )  # fmt: skip
    assert status == 201
    occurrence = made["occurrences"][0]["id"]
    ids = {"unit_id": site.world.school, "room_id": site.room, "booking_id": made["id"], "occurrence_id": occurrence}

    client.session.cookie_jar.clear()
    for method, path in routes:
        response = await client.request(method, path.format(**ids), headers=ORIGIN)
        assert response.status == 401, (method, path)

    async with app[state.DB].begin() as session:
        await accounts.create_user(
            session, app[state.PASSWORDS], username="parent", password=PASSWORD, role=Role.PARENT,
            unit_id=site.world.school, now=app[state.CLOCK].now(),
        )  # fmt: skip
    for username in ("parent", site.world.other_technician):
        caller = await as_user(client, username)
        for method, path in routes:
            if username != "parent" and "{" not in path:
                continue  # no target in the path: the body's rooms are checked (test_api, availability)
            status, _ = await caller.send(method, path.format(**ids), {})
            assert status == 403, (username, method, path)

    teacher = await as_user(client, site.world.teacher)
    for method, path in MANAGE_ONLY:
        status, _ = await teacher.send(method, path.format(**ids), {"name": "x"})
        assert status == 403, (method, path)
