"""API tokens: made by a signed-in user for themselves, shown once, sent as Bearer, expiring, revocable,
never a page session nor a cookie, and without CSRF (no cookie involved)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from common.clock import ManualClock
from controller import state
from controller.db.models import AuditEntry
from controller.people.models import ApiToken
from controller.security.tokens import sha256_hex
from tests.controller.conftest import ORIGIN, Client, csrf_token, sign_in
from tests.controller.people.conftest import People


async def _make_token(client: Client, username: str, name: str = "script", days: int = 30) -> str:
    token = await sign_in(client, username)
    response = await client.post(
        "/api/tokens", json={"name": name, "days": days}, headers={**ORIGIN, "X-CSRF-Token": token}
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    secret = body["token"]
    assert isinstance(secret, str) and secret.startswith("kt_")
    client.session.cookie_jar.clear()  # from here on, only the token
    return secret


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_token_is_shown_once_stored_hashed_and_works_without_cookie_or_csrf(
    pclient: Client, papp: web.Application, people: People
) -> None:
    secret = await _make_token(pclient, people.admin)
    async with papp[state.DB]() as session:
        stored = (await session.execute(select(ApiToken))).scalar_one()
        actions = list((await session.execute(select(AuditEntry.action))).scalars())
    assert stored.token_hash == sha256_hex(secret) and secret not in str(vars(stored))
    assert "token.create" in actions

    whoami = await pclient.get("/api/session", headers=_bearer(secret))
    assert whoami.status == 200 and (await whoami.json())["username"] == people.admin
    # A state-changing request with no Origin and no CSRF token: fine with a token.
    made = await pclient.post(
        f"/api/units/{people.school}/classes",
        json={"school_year": "2025-2026", "name": "Mầm 1"},
        headers=_bearer(secret),
    )
    assert made.status == 201, await made.text()
    listed = await (await pclient.get("/api/tokens", headers=_bearer(secret))).json()
    assert [t["name"] for t in listed["tokens"]] == ["script"] and "token" not in listed["tokens"][0]
    assert listed["tokens"][0]["last_used_at"] is not None


async def test_tokens_are_refused_for_pages_as_cookies_when_wrong_and_cannot_mint_tokens(
    pclient: Client, people: People
) -> None:
    secret = await _make_token(pclient, people.admin)
    page = await pclient.get("/admin/users", headers=_bearer(secret), allow_redirects=False)
    assert page.status == 401
    assert (await pclient.post("/api/tokens", json={"name": "x"}, headers=_bearer(secret))).status == 403
    for wrong in (secret + "x", secret[:-1], "kt_" + "A" * 43, "", "x" * 500, secret.upper()):
        response = await pclient.get("/api/session", headers=_bearer(wrong))
        assert response.status == 401, wrong
    # The token as a session cookie is unknown there.
    pclient.session.cookie_jar.update_cookies({"ketnoi_session": secret})
    assert (await pclient.get("/api/session")).status == 401


async def test_tokens_expire_and_are_revoked(pclient: Client, people: People, clock: ManualClock) -> None:
    short = await _make_token(pclient, people.teacher, "short", days=1)
    # A token carries its user's role and scope: the teacher's own school, not another.
    assert (await pclient.get(f"/api/units/{people.school}/classes", headers=_bearer(short))).status == 200
    assert (await pclient.get(f"/api/units/{people.other_school}/classes", headers=_bearer(short))).status == 403
    assert (await pclient.get("/api/users", headers=_bearer(short))).status == 403
    long = await _make_token(pclient, people.teacher, "long", days=30)
    assert (await pclient.get("/api/session", headers=_bearer(short))).status == 200
    await clock.advance(86400 + 1)
    assert (await pclient.get("/api/session", headers=_bearer(short))).status == 401
    assert (await pclient.get("/api/session", headers=_bearer(long))).status == 200
    tokens = await (await pclient.get("/api/tokens", headers=_bearer(long))).json()
    assert [t["name"] for t in tokens["tokens"]] == ["long"]
    token_id = tokens["tokens"][0]["id"]
    revoked = await pclient.post(f"/api/tokens/{token_id}/revoke", headers=_bearer(long))
    assert revoked.status == 200 and (await revoked.json())["revoked"] is True
    assert (await pclient.get("/api/session", headers=_bearer(long))).status == 401


async def test_nobody_revokes_another_users_token_and_disabling_a_user_kills_their_tokens(
    pclient: Client, people: People
) -> None:
    theirs = await _make_token(pclient, people.teacher)
    mine = await _make_token(pclient, people.admin)
    their_id = (await (await pclient.get("/api/tokens", headers=_bearer(theirs))).json())["tokens"][0]["id"]
    refused = await pclient.post(
        f"/api/tokens/{their_id}/revoke", headers=_bearer(await _make_token(pclient, people.staff))
    )
    assert refused.status == 404
    assert (await pclient.get("/api/session", headers=_bearer(theirs))).status == 200
    users = await (await pclient.get("/api/users?q=teacher", headers=_bearer(mine))).json()
    teacher_id = users["users"][0]["id"]
    assert (await pclient.post(f"/api/users/{teacher_id}/disable", headers=_bearer(mine))).status == 200
    assert (await pclient.get("/api/session", headers=_bearer(theirs))).status == 401


async def test_the_tokens_page_makes_lists_and_revokes(pclient: Client, people: People) -> None:
    await sign_in(pclient, people.parent)
    token = await csrf_token(pclient)
    made = await pclient.post(
        "/account/tokens", data={"name": "<b>mine</b>", "days": "7", "csrf_token": token}, headers=ORIGIN
    )
    page = await made.text()
    assert made.status == 200 and "kt_" in page and "&lt;b&gt;mine&lt;/b&gt;" in page and "<b>mine" not in page
    again = await (await pclient.get("/account/tokens")).text()
    assert "kt_" not in again  # shown once
    no_csrf = await pclient.post("/account/tokens", data={"name": "x", "days": "7"}, headers=ORIGIN)
    assert no_csrf.status == 403
