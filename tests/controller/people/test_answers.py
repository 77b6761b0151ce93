"""Real answers of the people API (tokens, users, audit, classes, children) match the models the OpenAPI
document gives for them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from controller.people.answers import (
    AuditPageOut,
    ChildDetailOut,
    ChildOut,
    ChildrenOut,
    ClassDetailOut,
    ClassesOut,
    ClassOut,
    ConsentOut,
    GuardianLinkedOut,
    NewTokenOut,
    RevokedOut,
    TokenOut,
    TokensOut,
    UserOut,
    UsersOut,
    UserWithPasswordOut,
)
from tests.controller.conftest import ORIGIN, Client, csrf_token, sign_in
from tests.controller.people.conftest import People


async def _call(client: Client, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    headers = {**ORIGIN, "X-CSRF-Token": await csrf_token(client)} if method != "GET" else {}
    response = await client.request(method, path, json=body, headers=headers)
    return response.status, await response.json()


async def test_people_answers_match_their_documented_models(pclient: Client, people: People) -> None:
    await sign_in(pclient, people.admin)
    status, token = await _call(pclient, "POST", "/api/tokens", {"name": "script", "days": 30})
    assert status == 201
    status, user = await _call(
        pclient, "POST", "/api/users", {"username": "co.mai", "role": "teacher", "unit_id": people.school}
    )
    assert status == 201
    answers: list[tuple[type[BaseModel], tuple[int, Any]]] = [
        (NewTokenOut, (201, token)),
        (TokensOut, await _call(pclient, "GET", "/api/tokens")),
        (TokenOut, await _call(pclient, "POST", f"/api/tokens/{token['id']}/revoke")),
        (UserWithPasswordOut, (201, user)),
        (UsersOut, await _call(pclient, "GET", "/api/users?q=co")),
        (UserOut, await _call(pclient, "GET", f"/api/users/{user['id']}")),
        (UserOut, await _call(pclient, "POST", f"/api/users/{user['id']}/disable")),
        (UserOut, await _call(pclient, "POST", f"/api/users/{user['id']}/enable")),
        (UserWithPasswordOut, await _call(pclient, "POST", f"/api/users/{user['id']}/reset-password")),
        (AuditPageOut, await _call(pclient, "GET", "/api/audit?limit=3")),
    ]
    for model, (status, body) in answers:
        assert status in (200, 201), (model, body)
        model.model_validate(body)
    assert len(AuditPageOut.model_validate(answers[-1][1][1]).entries) == 3


async def test_roster_answers_match_their_documented_models(pclient: Client, people: People) -> None:
    await sign_in(pclient, people.staff)
    status, klass = await _call(
        pclient, "POST", f"/api/units/{people.school}/classes", {"school_year": "2026-2027", "name": "Chồi 3"}
    )
    assert status == 201
    child_body = {"code": "HS77", "full_name": "Bé Bông", "date_of_birth": "2021-05-06", "class_id": klass["id"]}
    status, child = await _call(pclient, "POST", f"/api/units/{people.school}/children", child_body)
    assert status == 201
    guardian = {"user_id": people.parent_id, "relationship": "father"}
    answers: list[tuple[type[BaseModel], tuple[int, Any]]] = [
        (ClassOut, (status, klass)),
        (ChildOut, (status, child)),
        (ClassesOut, await _call(pclient, "GET", f"/api/units/{people.school}/classes")),
        (ClassDetailOut, await _call(pclient, "GET", f"/api/classes/{klass['id']}")),
        (ChildOut, await _call(pclient, "POST", f"/api/children/{child['id']}/move", {"class_id": people.klass})),
        (GuardianLinkedOut, await _call(pclient, "POST", f"/api/children/{child['id']}/guardians", guardian)),
        (ConsentOut, await _call(pclient, "POST", f"/api/children/{child['id']}/consents", {"given_by": "mẹ"})),
        (ChildDetailOut, await _call(pclient, "GET", f"/api/children/{child['id']}")),
    ]
    consent_id = answers[6][1][1]["id"]
    answers += [
        (ConsentOut, await _call(pclient, "POST", f"/api/children/{child['id']}/consents/{consent_id}/withdraw")),
    ]
    await sign_in(pclient, people.parent)
    answers += [
        (ChildrenOut, await _call(pclient, "GET", "/api/my/children")),
        (ChildDetailOut, await _call(pclient, "GET", f"/api/children/{child['id']}")),  # without guardians
    ]
    await sign_in(pclient, people.staff)
    answers += [
        (RevokedOut, await _call(pclient, "POST", f"/api/children/{child['id']}/guardians/{people.parent_id}/revoke")),
    ]
    for model, (status, body) in answers:
        assert status in (200, 201), (model, body)
        model.model_validate(body)
    assert ChildDetailOut.model_validate(answers[10][1][1]).guardians is None
