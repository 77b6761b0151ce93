"""Classes, children, guardians and consents: school roles act on their own school only, a parent on their own
children only; moving a child keeps its class history; revoking a link or withdrawing consent takes effect."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from controller import state
from controller.db.models import AuditEntry
from controller.people import roster
from tests.controller.conftest import ORIGIN, Client, csrf_token, sign_in
from tests.controller.people.conftest import People


async def _post(client: Client, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    token = await csrf_token(client)
    response = await client.post(path, json=body or {}, headers={**ORIGIN, "X-CSRF-Token": token})
    return response.status, await response.json()


async def test_school_roles_work_in_their_school_only(pclient: Client, people: People) -> None:
    await sign_in(pclient, people.teacher)
    own = await (await pclient.get(f"/api/units/{people.school}/classes")).json()
    assert {c["name"] for c in own["classes"]} == {"Lá 1", "<i>Lá 2</i>"}
    klass = await (await pclient.get(f"/api/classes/{people.klass}")).json()
    assert [c["code"] for c in klass["children"]] == ["HS001", "HS002"] and klass["all_consented"] is False
    assert (await pclient.get(f"/api/children/{people.child}")).status == 200
    for path in (
        f"/api/units/{people.other_school}/classes",
        f"/api/classes/{people.other_school_class}",
        f"/api/children/{people.other_child}",
        f"/api/units/{people.district}/classes",
    ):
        assert (await pclient.get(path)).status == 403, path
    status, _ = await _post(pclient, f"/api/units/{people.school}/classes", {"school_year": "2025-2026", "name": "X"})
    assert status == 403  # teachers read; staff write

    await sign_in(pclient, people.staff)
    status, made = await _post(
        pclient, f"/api/units/{people.school}/classes", {"school_year": "2025-2026", "name": "Mầm"}
    )
    assert status == 201
    for body, why in (
        ({"school_year": "2025-2027", "name": "A"}, "school year"),
        ({"school_year": "2025", "name": "A"}, "school year"),
        ({"school_year": "2025-2026", "name": "Mầm"}, "exists"),
        ({"school_year": "2025-2026"}, "name"),
    ):
        status, answer = await _post(pclient, f"/api/units/{people.school}/classes", body)
        assert status in (400, 409, 422) and why in answer["error"], (body, answer)
    status, _ = await _post(
        pclient, f"/api/units/{people.other_school}/classes", {"school_year": "2025-2026", "name": "Z"}
    )
    assert status == 403
    status, child = await _post(
        pclient,
        f"/api/units/{people.school}/children",
        {"code": "HS9", "full_name": "Bé Na", "date_of_birth": "2021-02-03", "class_id": made["id"]},
    )
    assert status == 201 and child["class_id"] == made["id"]
    status, answer = await _post(
        pclient,
        f"/api/units/{people.school}/children",
        {"code": "HS8", "full_name": "Bé", "date_of_birth": "2021-02-03", "class_id": people.other_school_class},
    )
    assert status == 400 and "not a class of this school" in answer["error"]
    status, answer = await _post(
        pclient,
        f"/api/units/{people.school}/children",
        {"code": "HS7", "full_name": "Bé", "date_of_birth": "03/02/2021"},
    )
    assert status == 422 and "date_of_birth" in answer["error"]  # the body's model refuses it (jsonbody's rule)


async def test_moving_a_child_keeps_its_history_and_is_audited(
    pclient: Client, papp: web.Application, people: People
) -> None:
    await sign_in(pclient, people.technician)
    status, moved = await _post(pclient, f"/api/children/{people.child}/move", {"class_id": people.other_class})
    assert status == 200 and moved["class_id"] == people.other_class
    status, _ = await _post(pclient, f"/api/children/{people.child}/move", {"class_id": people.other_school_class})
    assert status == 400
    status, _ = await _post(pclient, f"/api/children/{people.child}/move", {"class_id": None})
    assert status == 200
    shown = await (await pclient.get(f"/api/children/{people.child}")).json()
    history = [(p["class_id"], p["ended_at"] is None) for p in shown["placements"]]
    assert history == [(people.klass, False), (people.other_class, False)]
    async with papp[state.DB]() as session:
        moves = (await session.execute(select(AuditEntry.details).where(AuditEntry.action == "child.move"))).scalars()
        assert [(d["from_class"], d["to_class"]) for d in moves] == [
            (people.klass, people.other_class),
            (people.other_class, None),
        ]
        assert [c.id for c in await roster.children_of_class(session, people.klass)] == [people.sibling]


async def test_a_parent_sees_and_consents_for_their_own_children_only(
    pclient: Client, papp: web.Application, people: People
) -> None:
    await sign_in(pclient, people.staff)
    status, _ = await _post(
        pclient, f"/api/children/{people.child}/guardians", {"user_id": people.parent_id, "relationship": "mother"}
    )
    assert status == 201
    status, answer = await _post(
        pclient, f"/api/children/{people.child}/guardians", {"user_id": people.parent_id, "relationship": "aunt"}
    )
    assert status == 400 and "relationship" in answer["error"]
    teacher_id = (await (await pclient.get(f"/api/children/{people.child}")).json())["guardians"][0]["user_id"]
    assert teacher_id == people.parent_id

    await sign_in(pclient, people.parent)
    mine = await (await pclient.get("/api/my/children")).json()
    assert [c["id"] for c in mine["children"]] == [people.child]
    shown = await (await pclient.get(f"/api/children/{people.child}")).json()
    assert "guardians" not in shown and shown["consents"] == []
    for path in (
        f"/api/children/{people.sibling}",
        f"/api/children/{people.other_child}",
        f"/api/classes/{people.klass}",
        f"/api/units/{people.school}/classes",
        "/api/users",
        "/api/audit",
    ):
        assert (await pclient.get(path)).status == 403, path
    for path in (
        f"/api/children/{people.sibling}/consents",
        f"/api/children/{people.child}/move",
        f"/api/children/{people.child}/guardians",
    ):
        status, _ = await _post(pclient, path, {"class_id": None})
        assert status == 403, path
    status, consent = await _post(pclient, f"/api/children/{people.child}/consents", {"given_by": "someone else"})
    assert status == 201 and consent["given_by"] == f"user:{people.parent}"
    async with papp[state.DB]() as session:
        assert await roster.has_consent(session, people.child)
        assert not await roster.class_fully_consented(session, people.klass)  # the sibling has none
    status, _ = await _post(pclient, f"/api/children/{people.child}/consents/{consent['id']}/withdraw")
    assert status == 200
    status, _ = await _post(pclient, f"/api/children/{people.child}/consents/{consent['id']}/withdraw")
    assert status == 404
    async with papp[state.DB]() as session:
        assert not await roster.has_consent(session, people.child)

    async with papp[state.DB]() as session:
        assert await roster.parents_children_in_class(session, people.parent_id, people.klass) == [people.child]
        assert await roster.parents_children_in_class(session, people.parent_id, people.other_class) == []
    await sign_in(pclient, people.other_parent)
    assert (await pclient.get(f"/api/children/{people.child}")).status == 403
    await sign_in(pclient, people.staff)
    status, _ = await _post(pclient, f"/api/children/{people.child}/guardians/{people.parent_id}/revoke")
    assert status == 200
    await sign_in(pclient, people.parent)
    assert (await pclient.get(f"/api/children/{people.child}")).status == 403
    assert (await (await pclient.get("/api/my/children")).json())["children"] == []
    async with papp[state.DB]() as session:
        assert await roster.parents_children_in_class(session, people.parent_id, people.klass) == []


async def test_a_class_with_every_child_consented(pclient: Client, papp: web.Application, people: People) -> None:
    await sign_in(pclient, people.staff)
    for child in (people.child, people.sibling):
        status, _ = await _post(pclient, f"/api/children/{child}/consents", {"given_by": "Mẹ"})
        assert status == 201
    klass = await (await pclient.get(f"/api/classes/{people.klass}")).json()
    assert klass["all_consented"] is True
    status, _ = await _post(pclient, f"/api/classes/{people.klass}/staff", {"user_id": people.parent_id})
    assert status == 400
