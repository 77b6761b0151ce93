"""User administration through the API and the pages: who may do what, first passwords shown once, and every
change in the audit log; the audit log page and API filter and page."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from controller import state
from controller.db.models import AuditEntry, Role, User
from tests.controller.conftest import ORIGIN, Client, csrf_token, sign_in
from tests.controller.people.conftest import People


async def _post(client: Client, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    token = await csrf_token(client)
    response = await client.post(path, json=body or {}, headers={**ORIGIN, "X-CSRF-Token": token})
    return response.status, await response.json()


async def _actions(app: web.Application) -> list[tuple[str, str, str]]:
    async with app[state.DB]() as session:
        rows = await session.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.target).order_by(AuditEntry.id)
        )
        return [(a, b, c) for a, b, c in rows.all()]


async def _user_id(app: web.Application, username: str) -> int:
    async with app[state.DB]() as session:
        return int((await session.execute(select(User.id).where(User.username == username))).scalar_one())


async def test_admin_creates_changes_disables_and_resets_and_all_is_audited(
    pclient: Client, papp: web.Application, people: People
) -> None:
    await sign_in(pclient, people.admin)
    status, made = await _post(
        pclient,
        "/api/users",
        {"username": "co.lan", "role": "teacher", "unit_id": people.school, "display_name": "Cô Lan"},
    )
    assert status == 201 and len(made["password"]) >= 12
    first_password = made["password"]
    status, again = await _post(
        pclient, "/api/users", {"username": "co.lan", "role": "teacher", "unit_id": people.school}
    )
    assert status == 409 and "taken" in again["error"]
    for bad, expected, why in (  # the service's refusals are 400; what the body's model refuses is 422 (jsonbody)
        ({"username": "x1", "role": "teacher"}, 400, "needs a unit"),
        ({"username": "x2", "role": "teacher", "unit_id": people.district}, 400, "scoped to a school"),
        ({"username": "x3", "role": "admin", "unit_id": people.school}, 400, "no unit"),
        ({"username": "x4", "role": "wizard", "unit_id": people.school}, 422, "role"),
        ({"username": "x5", "role": "teacher", "unit_id": "one"}, 422, "unit_id"),
        ({"username": "x6", "role": "teacher", "unit_id": people.school, "extra": 1}, 422, "extra"),
        ({"username": "Bad Name", "role": "teacher", "unit_id": people.school}, 400, "username"),
    ):
        status, answer = await _post(pclient, "/api/users", bad)
        assert status == expected and why in answer["error"], (bad, answer)

    user_id = made["id"]
    status, changed = await _post(
        pclient, f"/api/users/{user_id}/role", {"role": "school_staff", "unit_id": people.school}
    )
    assert status == 200 and changed["role"] == "school_staff"
    status, reset = await _post(pclient, f"/api/users/{user_id}/reset-password")
    assert status == 200 and reset["password"] != first_password
    new_password = reset["password"]
    status, _ = await _post(pclient, f"/api/users/{user_id}/disable")
    assert status == 200

    signin = await pclient.post(
        "/signin", data={"username": "co.lan", "password": new_password, "next": "/"}, headers=ORIGIN
    )
    assert signin.status == 401  # disabled (and the admin's own session is untouched)
    status, _ = await _post(pclient, f"/api/users/{user_id}/enable")
    assert status == 200

    me = await _user_id(papp, people.admin)
    status, refused = await _post(pclient, f"/api/users/{me}/disable")
    assert status == 409 and "own account" in refused["error"]
    status, refused = await _post(pclient, f"/api/users/{me}/role", {"role": "teacher", "unit_id": people.school})
    assert status == 409 and "last active administrator" in refused["error"]

    entries = [action for actor, action, target in await _actions(papp) if target == "user:co.lan"]
    assert entries == [
        "user.create",
        "user.role",
        "user.password_reset",
        "user.disable",
        "signin.failed",
        "user.enable",
    ]
    assert new_password not in str(await _actions(papp)) and first_password not in str(await _actions(papp))


async def test_a_district_technician_manages_only_their_schools_staff(
    pclient: Client, papp: web.Application, people: People
) -> None:
    await sign_in(pclient, people.technician)
    status, made = await _post(
        pclient, "/api/users", {"username": "thay.minh", "role": "teacher", "unit_id": people.school}
    )
    assert status == 201
    for body in (
        {"username": "a1", "role": "teacher", "unit_id": people.other_school},
        {"username": "a2", "role": "admin"},
        {"username": "a3", "role": "district_technician", "unit_id": people.district},
        {"username": "a4", "role": "parent", "unit_id": people.school},
    ):
        status, answer = await _post(pclient, "/api/users", body)
        assert status == 403, (body, answer)
    listed = await (await pclient.get("/api/users")).json()
    assert {u["username"] for u in listed["users"]} == {"teacher", "staff", "thay.minh"}
    for username in (people.admin, people.other_technician, people.parent, people.technician):
        user_id = await _user_id(papp, username)
        assert (await pclient.get(f"/api/users/{user_id}")).status == 403, username
        status, _ = await _post(pclient, f"/api/users/{user_id}/reset-password")
        assert status == 403, username
    status, _ = await _post(pclient, f"/api/users/{made['id']}/role", {"role": "admin"})
    assert status == 403
    status, _ = await _post(
        pclient, f"/api/users/{made['id']}/role", {"role": "teacher", "unit_id": people.other_school}
    )
    assert status == 403
    assert (await pclient.get("/api/audit")).status == 403
    assert (await pclient.get("/admin/audit")).status == 403
    # A teacher sees no user administration at all.
    await sign_in(pclient, people.teacher)
    assert (await pclient.get("/api/users")).status == 403
    assert (await pclient.get("/admin/users")).status == 403


async def test_the_user_pages_create_show_the_password_once_and_escape_names(
    pclient: Client, papp: web.Application, people: People
) -> None:
    await sign_in(pclient, people.admin)
    token = await csrf_token(pclient)
    form = {
        "username": "ba.hoa",
        "display_name": "<script>x</script>",
        "role": "parent",
        "unit_id": str(people.school),
        "csrf_token": token,
    }
    page = await pclient.post("/admin/users", data=form, headers=ORIGIN)
    text = await page.text()
    assert page.status == 200 and "ba.hoa" in text and "&lt;script&gt;" in text and "<script>x" not in text
    user_id = await _user_id(papp, "ba.hoa")
    shown = await (await pclient.get(f"/admin/users/{user_id}")).text()
    assert "Phụ huynh" in shown and "Mầm non &lt;b&gt;Hoa Sen&lt;/b&gt;" in shown
    reset = await pclient.post(f"/admin/users/{user_id}/reset-password", data={"csrf_token": token}, headers=ORIGIN)
    assert reset.status == 200 and "bigcode" in await reset.text()
    disabled = await pclient.post(
        f"/admin/users/{user_id}/disable", data={"csrf_token": token}, headers=ORIGIN, allow_redirects=False
    )
    assert disabled.status == 303
    role = await pclient.post(
        f"/admin/users/{user_id}/role",
        data={"role": "teacher", "unit_id": str(people.district), "csrf_token": token},
        headers=ORIGIN,
    )
    assert role.status == 400 and "scoped to a school" in await role.text()
    english = await (await pclient.get("/admin/users?lang=en")).text()
    assert "Users" in english and "ba.hoa" in english
    async with papp[state.DB]() as session:
        user = (await session.execute(select(User).where(User.username == "ba.hoa"))).scalar_one()
    assert user.disabled and user.role is Role.PARENT


async def test_the_audit_log_filters_and_pages(pclient: Client, papp: web.Application, people: People) -> None:
    await sign_in(pclient, people.admin)
    for n in range(7):
        status, _ = await _post(
            pclient, f"/api/units/{people.school}/classes", {"school_year": "2025-2026", "name": f"L{n}"}
        )
        assert status == 201
    page = await (await pclient.get("/api/audit?action=class.*&limit=3")).json()
    assert [e["action"] for e in page["entries"]] == ["class.create"] * 3
    seen = [e["id"] for e in page["entries"]]
    while page["next_before_id"] is not None:
        page = await (await pclient.get(f"/api/audit?action=class.*&limit=3&before_id={page['next_before_id']}")).json()
        seen += [e["id"] for e in page["entries"]]
    assert len(seen) == 7 and seen == sorted(seen, reverse=True)
    mine = await (await pclient.get(f"/api/audit?actor=user:{people.admin}&action=signin")).json()
    assert len(mine["entries"]) == 1
    none = await (await pclient.get("/api/audit?since=2030-01-01T00:00:00%2B07:00")).json()
    assert none["entries"] == []
    for bad in ("since=yesterday", "until=2026-01-01T00:00:00", "limit=x", "before_id=-1"):
        response = await pclient.get(f"/api/audit?{bad}")
        assert response.status == 422, bad
    html = await (await pclient.get("/admin/audit?action=class.*")).text()
    assert html.count("class.create") == 7
    assert "class.create" not in await (await pclient.get("/admin/audit?from=2030-01-01")).text()
    assert "class.create" in await (await pclient.get("/admin/audit?from=2026-01-05&to=2026-01-05")).text()
    assert (await pclient.get("/admin/audit?from=05/01/2026")).status == 400
