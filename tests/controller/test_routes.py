"""Every route, listed from the router itself, refuses callers who may not use it.

Public on purpose: sign-in (GET, POST), /healthz, /metrics (aggregate figures, limited to `metrics_networks`),
/static/, and the agent's enrolment and uplink (which authenticate by one-time code and by token).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

from aiohttp import web
from sqlalchemy import select

from common.clock import ManualClock
from controller import state
from controller.app import build_app
from controller.bookings.models import BandwidthClass, Booking, BookingMode, Occurrence, Room
from controller.db.models import Agent, Camera, Role, User
from controller.people.models import Child, SchoolClass
from controller.security.passwords import Passwords, cheap_hasher
from protocol.camera import CameraState
from protocol.media import NODE_REPORT_PATH
from protocol.uplink import ENROL_PATH, UPLINK_PATH, Error, Welcome
from tests.controller.conftest import ORIGIN, AiohttpClient, Client, World, csrf_token, make_config, seed, sign_in
from tests.controller.uplink_helpers import camera, connect, enrol, hello, receive, send

PUBLIC = {
    ("GET", "/signin"),
    ("POST", "/signin"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("POST", ENROL_PATH),
    ("GET", UPLINK_PATH),
    ("GET", "/api/openapi.json"),
}
ANY_SIGNED_IN = {("GET", "/api/session"), ("POST", "/signout")}
# Media nodes authenticate by the node bearer derived from the media secret (tests/controller/live).
PUBLIC |= {("POST", NODE_REPORT_PATH)}
# Join pages authenticate by the signed token in the path (tests/controller/calendar); calendar feeds are API
# routes (session or API token: 401 when anonymous) and the caller's own feed admits every booking role.
PUBLIC |= {("GET", "/join/{token}")}
# A meeting token is asked for with the join link's token in the body, same origin only (tests/meetings).
PUBLIC |= {("POST", "/api/meetings/join")}
FEEDS = ("/calendar/",)
ANY_SIGNED_IN |= {("GET", "/calendar/users/me.ics")}
ANY_SIGNED_IN |= {("POST", "/api/calendar/feed-token"), ("POST", "/api/calendar/feed-token/revoke")}
# Feed URLs with a feed token authenticate by that token (unknown: 401; out of scope: 403; tests/controller/calendar).
PUBLIC |= {("GET", "/calendar/feeds/{token}/me.ics"), ("GET", "/calendar/feeds/{token}/rooms/{room_id}.ics")}
# Single sign-on: to the Department's provider and back; the signed attempt cookie and `state` are the credential
# (tests/controller/sso).
PUBLIC |= {("GET", "/signin/sso"), ("GET", "/signin/sso/callback")}
# Everyone has their own account page and links or unlinks their own Department account there (another user's
# link id is "no such link"); removing another user's link is for administrators (tests/controller/sso).
ANY_SIGNED_IN |= {("GET", "/account"), ("POST", "/account/sso/link"), ("POST", "/account/sso/{link_id}/unlink")}
# Everyone manages their own API tokens (another's token id is "no such token": tests/controller/people).
ANY_SIGNED_IN |= {(m, p) for m in ("GET", "POST") for p in ("/api/tokens", "/account/tokens")}
ANY_SIGNED_IN |= {("POST", "/api/tokens/{token_id}/revoke"), ("POST", "/account/tokens/{token_id}/revoke")}
ADMIN_ONLY = {("POST", "/api/agents/{agent_id}/revoke"), ("POST", "/agents/{agent_id}/revoke")}
# Prometheus scrapes agents through the controller with an administrator's API token (tests/controller/uplink).
ADMIN_ONLY |= {("GET", "/api/agents/{agent_id}/metrics"), ("GET", "/api/prometheus/agents")}
ADMIN_ONLY |= {("POST", "/admin/users/{user_id}/sso/{link_id}/unlink")}
# Booking pages without an id in the path admit every booking role (teachers included); the rooms a form names
# are checked by the service (tests/controller/test_booking_pages.py).
ANY_BOOKER = {("GET", "/bookings/new"), ("POST", "/bookings"), ("GET", "/my/sessions")}
# Rooms and bookings admit more roles (teachers book their school's rooms): the same enumeration for them is in
# tests/controller/bookings/test_routes.py.
BOOKING_ROUTES = (
    "/api/rooms",
    "/api/bookings",
    "/api/availability",
    "/api/units/{unit_id}/r",
    "/api/units/{unit_id}/b",
    "/calendar/rooms",
)


async def _agent_with_camera(app: web.Application, unit_id: int, token_hash: str) -> tuple[int, int]:
    now = app[state.CLOCK].now()
    async with app[state.DB].begin() as session:
        agent = Agent(unit_id=unit_id, token_hash=token_hash, hostname="h", version="1", enrolled_at=now)
        session.add(agent)
        await session.flush()
        camera = Camera(
            agent_id=agent.id,
            endpoint_ref="urn:uuid:x",
            state=CameraState.PENDING_APPROVAL,
            reason="outside",
            first_seen=now,
            last_seen=now,
            changed_at=now,
        )
        session.add(camera)
        await session.flush()
        return agent.id, camera.id


def _routes(app: web.Application) -> list[tuple[str, str]]:
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        if "prefix" in info:  # the static directory
            assert app[state.POLICIES][route].roles is None
            continue
        canonical = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.resource.canonical if route.resource else "")
        found.append((route.method, canonical))
    return found


async def _people_ids(app: web.Application, unit_id: int, teacher: str | None) -> dict[str, int]:
    """A class, a child and a teacher (made when `teacher` is None) of the school, for the path's ids."""
    now = app[state.CLOCK].now()
    async with app[state.DB].begin() as session:
        klass = SchoolClass(unit_id=unit_id, school_year="2025-2026", name="Lá 1", created_at=now)
        session.add(klass)
        await session.flush()
        child = Child(unit_id=unit_id, code="HS1", full_name="Bé", date_of_birth=date(2021, 1, 1), class_id=klass.id,
                      created_at=now)  # fmt: skip
        session.add(child)
        if teacher is None:
            user = User(username=f"t{unit_id}", password_hash="!", role=Role.TEACHER, unit_id=unit_id, created_at=now)
            session.add(user)
        else:
            user = (await session.execute(select(User).where(User.username == teacher))).scalar_one()
        await session.flush()
        return {"class_id": klass.id, "child_id": child.id, "user_id": user.id, "guardian_id": user.id,
                "consent_id": 1, "token_id": 1, "link_id": 1}  # fmt: skip


async def _booking_ids(app: web.Application, unit_id: int, user_id: int) -> dict[str, int]:
    """A room of the school and a booking in it with one occurrence, for the booking pages' ids."""
    now = app[state.CLOCK].now()
    async with app[state.DB].begin() as session:
        room = Room(unit_id=unit_id, name="P1", capacity=30, equipment=[], bandwidth_class=BandwidthClass.MEDIUM,
                    booking_window_days=90, max_duration_minutes=240, created_at=now, updated_at=now)  # fmt: skip
        session.add(room)
        await session.flush()
        booking = Booking(title="b", agenda="", mode=BookingMode.MEETING, organizer_id=user_id, host_room_id=room.id,
                          starts_at=now, ends_at=now + timedelta(hours=1), time_zone="Asia/Ho_Chi_Minh", rrule=None,
                          exdates=[], attendees=None, created_at=now, updated_at=now)  # fmt: skip
        session.add(booking)
        await session.flush()
        occurrence = Occurrence(booking_id=booking.id, recurrence_id=now, starts_at=now,
                                ends_at=now + timedelta(hours=1), cancelled=False, detached=False)  # fmt: skip
        session.add(occurrence)
        await session.flush()
        return {"room_id": room.id, "booking_id": booking.id, "occurrence_id": occurrence.id}


def _fill(path: str, ids: dict[str, int]) -> str:
    return path.format(**ids)


async def _call(client: Client, method: str, path: str, token: str | None = None) -> tuple[int, dict[str, str]]:
    headers = dict(ORIGIN)
    if token:
        headers["X-CSRF-Token"] = token
    response = await client.request(method, path, headers=headers, allow_redirects=False)
    return response.status, dict(response.headers)


async def test_every_route_has_a_policy_and_refuses_who_it_must(
    client: Client, app: web.Application, world: World
) -> None:
    routes = _routes(app)
    assert len(routes) >= 20 and set(routes) >= PUBLIC
    assert all(route in app[state.POLICIES] for route in app.router.routes())
    own_agent, own_camera = await _agent_with_camera(app, world.school, "a" * 64)
    other_agent, other_camera = await _agent_with_camera(app, world.other_school, "b" * 64)
    own = {"unit_id": world.school, "agent_id": own_agent, "camera_id": own_camera}
    own |= await _people_ids(app, world.school, world.teacher)
    own |= await _booking_ids(app, world.school, own["user_id"])
    other = {"unit_id": world.other_school, "agent_id": other_agent, "camera_id": other_camera}
    other |= await _people_ids(app, world.other_school, None)
    other |= await _booking_ids(app, world.other_school, other["user_id"])
    guarded = [r for r in routes if r not in PUBLIC and not r[1].startswith(BOOKING_ROUTES)]

    for method, path in guarded:  # anonymous
        status, headers = await _call(client, method, _fill(path, own))
        if path.startswith(("/api/", *FEEDS)):
            assert status == 401, (method, path)
        else:
            assert status == 302 and headers["Location"].startswith("/signin"), (method, path)

    await sign_in(client, world.teacher)
    token = await csrf_token(client)
    for method, path in guarded:  # a role with none of these pages, or the other school's ids
        if (method, path) in ANY_SIGNED_IN | ANY_BOOKER:
            continue
        status, _ = await _call(client, method, _fill(path, other), token)
        assert status == 403, (method, path)

    teacher_page = await client.get("/")
    assert teacher_page.status == 403 and "không có quyền" in await teacher_page.text()

    await sign_in(client, world.technician)
    token = await csrf_token(client)
    for method, path in guarded:  # a technician of another district, or an admin-only route
        if (method, path) in ANY_SIGNED_IN or "{" not in path:
            continue
        status, _ = await _call(client, method, _fill(path, other), token)
        assert status == 403, (method, path)
        if (method, path) in ADMIN_ONLY:
            status, _ = await _call(client, method, _fill(path, own), token)
            assert status == 403, (method, path)

    # Lists are filtered to the technician's district.
    units = await (await client.get("/api/units")).json()
    assert {u["id"] for u in units["units"]} == {world.district, world.school}
    overview = await (await client.get("/")).text()
    assert "Sao Mai" not in overview and "Hoa Sen" in overview
    # Ids that do not exist are out of scope too (no probing for what exists).
    assert (await client.get("/api/agents/999999")).status == 403
    async with app[state.DB]() as session:
        approved = (await session.execute(select(Camera.approved).where(Camera.id == other_camera))).scalar_one()
    assert approved is False


async def test_admin_reaches_everything_and_unknown_ids_are_404(
    client: Client, app: web.Application, world: World
) -> None:
    await sign_in(client, world.admin)
    for path in ("/api/units/999999", "/api/agents/999999", "/api/agents/999999/cameras", "/units/999999"):
        assert (await client.get(path)).status == 404, path
    missing = await client.get("/api/nothing-here")
    assert missing.status == 404 and "error" in await missing.json()
    units = await (await client.get("/api/units")).json()
    assert len(units["units"]) == 5


async def test_metrics_are_aggregate_and_from_allowed_networks_only(client: Client, world: World) -> None:
    response = await client.get("/metrics")
    assert response.status == 200
    body = await response.text()
    assert 'ketnoi_agents{state="online"} 0.0' in body
    assert 'ketnoi_uplink_messages_total{type="hello"} 0.0' in body
    assert "Hoa Sen" not in body


async def test_metrics_refuse_other_networks_and_count_uplink_messages(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock
) -> None:
    app = build_app(
        make_config(tmp_path, metrics_networks=["10.0.0.0/8"]), clock=clock, passwords=Passwords(cheap_hasher()),
        secret_key=b"m" * 32,
    )  # fmt: skip
    client = await aiohttp_client(app)
    refused = await client.get("/metrics")
    assert refused.status == 403 and "not served" in (await refused.json())["error"]
    world = await seed(app)
    enrolled = await enrol(client, app, world.school)
    ws = await connect(client, enrolled.token)
    await send(ws, hello([camera(1)]))
    assert isinstance(await receive(ws), Welcome)
    await ws.send_str("garbage")
    assert isinstance(await receive(ws), Error)
    registry = app[state.METRICS]
    async with app[state.DB]() as session:
        await registry.refresh(session)
    body = registry.render().decode()
    assert 'ketnoi_uplink_messages_total{type="hello"} 1.0' in body
    assert 'ketnoi_agents{state="online"} 1.0' in body and 'ketnoi_cameras{state="ready"} 1.0' in body
    assert "garbage" not in body and enrolled.token not in body
    await ws.close()
