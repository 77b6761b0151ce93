"""Unit and room administration pages: the tree, creating and editing units (level, time zone) and rooms
(capacity, equipment, bandwidth class, policy, in use), refusals shown beside the form, scope, and the audit."""

from __future__ import annotations

import re

from aiohttp import web
from sqlalchemy import select

from controller import state
from controller.db.models import AuditEntry, SchoolLevel, Unit
from tests.controller.bookings.conftest import Site, as_user
from tests.controller.conftest import ORIGIN, Client


async def _post(client: Client, path: str, token: str, **fields: str) -> tuple[int, str, str]:
    response = await client.post(path, data={"csrf_token": token, **fields}, headers=ORIGIN, allow_redirects=False)
    return response.status, response.headers.get("Location", ""), await response.text()


def _alert(page: str) -> str:
    found = re.search(r'role="alert"[^>]*>(.*?)</p>', page, re.S)
    assert found is not None, page
    return found.group(1).replace("&#39;", "'")


async def _unit(app: web.Application, unit_id: int) -> Unit:
    async with app[state.DB]() as session:
        unit = await session.get(Unit, unit_id)
    assert unit is not None
    return unit


async def test_admin_creates_and_edits_units_in_the_tree(client: Client, site: Site, app: web.Application) -> None:
    admin = await as_user(client, site.world.admin)
    tree = await (await client.get("/admin/units")).text()
    rows = re.findall(r'data-unit="(\d+)"', tree)
    assert rows.index(str(site.world.district)) < rows.index(str(site.world.school))  # a school after its district
    assert "· · · · <a" in tree  # the school is two levels down

    status, location, _ = await _post(
        client,
        "/admin/units",
        admin.token,
        name="Trường Tiểu học Lê Lợi",
        kind="school",
        parent_id=str(site.world.district),
        school_level="primary",
        time_zone="Asia/Bangkok",
    )
    assert status == 303 and location.startswith("/admin/units/")
    made = int(location.split("/")[3].split("?")[0])
    unit = await _unit(app, made)
    assert (unit.parent_id, unit.school_level, unit.time_zone) == (
        site.world.district,
        SchoolLevel.PRIMARY,
        "Asia/Bangkok",
    )

    status, _, page = await _post(
        client, f"/admin/units/{made}", admin.token, name="Trường TH Lê Lợi", school_level="", time_zone="Mars/Olympus"
    )
    assert status == 422 and "múi giờ không hợp lệ 'Mars/Olympus'" in _alert(page)
    status, _, _ = await _post(
        client,
        f"/admin/units/{made}",
        admin.token,
        name="Trường TH Lê Lợi",
        school_level="",
        time_zone="Asia/Ho_Chi_Minh",
    )
    assert status == 303
    unit = await _unit(app, made)
    assert (unit.name, unit.school_level, unit.time_zone) == ("Trường TH Lê Lợi", None, "Asia/Ho_Chi_Minh")

    status, _, page = await _post(
        client, "/admin/units?lang=en", admin.token, name="Lạc", kind="school", parent_id="", time_zone="UTC"
    )
    assert status == 422 and "a school needs a parent unit" in _alert(page)

    async with app[state.DB]() as session:
        actions = list((await session.execute(select(AuditEntry.action, AuditEntry.target))).all())
    assert ("unit.create", f"unit:{made}") in actions and ("unit.update", f"unit:{made}") in actions


async def test_a_technician_administers_the_schools_of_their_district_only(client: Client, site: Site) -> None:
    tech = await as_user(client, site.world.technician)
    listed = re.findall(r'data-unit="(\d+)"', await (await client.get("/admin/units")).text())
    assert str(site.world.school) in listed and str(site.world.other_school) not in listed

    status, location, _ = await _post(
        client, "/admin/units", tech.token, name="Mầm non Mới", kind="school", parent_id=str(site.world.district)
    )
    assert status == 303, location
    status, _, page = await _post(
        client, "/admin/units", tech.token, name="Ngoài", kind="school", parent_id=str(site.world.other_district)
    )
    assert status == 403 and "bạn không được tạo đơn vị này ở đây" in _alert(page)
    status, _, page = await _post(
        client, "/admin/units", tech.token, name="Phòng mới", kind="district", parent_id=str(site.world.department)
    )
    assert status == 403
    status, _, page = await _post(
        client, f"/admin/units/{site.world.district}", tech.token, name="Đổi tên", time_zone="Asia/Ho_Chi_Minh"
    )
    assert status == 403 and "bạn không được sửa đơn vị này" in _alert(page)
    assert (await client.get(f"/admin/units/{site.world.other_school}")).status == 403
    status, _, _ = await _post(client, f"/admin/units/{site.world.other_school}/rooms", tech.token, name="X")
    assert status == 403

    teacher = await as_user(client, site.world.teacher)
    assert (await client.get("/admin/units")).status == 403
    status, _, _ = await _post(client, f"/admin/rooms/{site.room}", teacher.token, name="X")
    assert status == 403


async def test_rooms_are_created_and_edited_through_the_pages(client: Client, site: Site, app: web.Application) -> None:
    tech = await as_user(client, site.world.technician)
    fields = {
        "name": "Phòng Zoom",
        "capacity": "25",
        "equipment": "camera; loa, màn hình",
        "bandwidth_class": "low",
        "booking_window_days": "30",
        "max_duration_minutes": "90",
        "active": "on",
    }
    status, location, _ = await _post(client, f"/admin/units/{site.world.school}/rooms", tech.token, **fields)
    assert status == 303 and location.startswith("/admin/rooms/")
    room_id = int(location.split("/")[3].split("?")[0])
    room = await (await client.get(f"/api/rooms/{room_id}")).json()
    assert room["equipment"] == ["camera", "loa", "màn hình"] and room["bandwidth_class"] == "low"
    assert room["policy"] == {"booking_window_days": 30, "max_duration_minutes": 90, "capacity": 25}
    page = await (await client.get(f"/admin/units/{site.world.school}")).text()
    assert f'data-room="{room_id}"' in page and "Phòng Zoom" in page

    status, _, page = await _post(client, f"/admin/rooms/{room_id}", tech.token, **{**fields, "capacity": "0"})
    assert status == 422 and "capacity" in _alert(page) and 'value="0"' in page  # what was typed is kept
    status, _, page = await _post(client, f"/admin/rooms/{room_id}", tech.token, **{**fields, "name": "Phòng họp A"})
    assert status == 409 and "đơn vị này đã có phòng tên 'Phòng họp A'" in _alert(page)
    unchecked = {key: value for key, value in fields.items() if key != "active"}
    status, _, _ = await _post(client, f"/admin/rooms/{room_id}", tech.token, **{**unchecked, "capacity": "60"})
    assert status == 303
    room = await (await client.get(f"/api/rooms/{room_id}")).json()
    assert room["active"] is False and room["policy"]["capacity"] == 60
    edit = await (await client.get(f"/admin/rooms/{room_id}?saved=1")).text()
    assert 'role="status"' in edit and 'value="60"' in edit

    async with app[state.DB]() as session:
        actions = list((await session.execute(select(AuditEntry.action, AuditEntry.target))).all())
    assert ("room.create", f"room:{room_id}") in actions and ("room.update", f"room:{room_id}") in actions
