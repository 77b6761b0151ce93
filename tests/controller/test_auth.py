"""Sign-in, sessions, CSRF, lockout and flood limits."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import func, select

from common.clock import ManualClock
from controller import state
from controller.db.models import AuditEntry, UserSession
from tests.controller.conftest import ORIGIN, PASSWORD, Client, World, cookie_value, csrf_token, sign_in

BAD_LOGIN = "Tên đăng nhập hoặc mật khẩu không đúng."


async def _post_signin(client: Client, username: str, password: str) -> tuple[int, str]:
    response = await client.post(
        "/signin", data={"username": username, "password": password}, headers=ORIGIN, allow_redirects=False
    )
    return response.status, await response.text()


async def test_fresh_install_says_how_to_create_the_first_admin(client: Client) -> None:
    page = await (await client.get("/signin")).text()
    assert "python -m controller create-admin --username" in page
    status, page = await _post_signin(client, "admin", "admin")
    assert status == 401 and BAD_LOGIN in page


async def test_signin_rotates_the_session_and_signout_ends_it(
    client: Client, world: World, app: web.Application
) -> None:
    await sign_in(client, world.technician)
    first = cookie_value(client)
    assert first
    cookie = next(c for c in client.session.cookie_jar if c.key == "ketnoi_session")
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    await sign_in(client, world.technician)
    second = cookie_value(client)
    assert second and second != first
    async with app[state.DB]() as session:
        assert (await session.execute(select(func.count(UserSession.id)))).scalar_one() == 1
    # The old id no longer works.
    token = await csrf_token(client)
    client.session.cookie_jar.clear()
    assert (await client.get("/api/units", headers={"Cookie": f"ketnoi_session={first}"})).status == 401
    assert (await client.get("/api/units", headers={"Cookie": f"ketnoi_session={second}"})).status == 200
    response = await client.post(
        "/signout",
        data={"csrf_token": token},
        headers={**ORIGIN, "Cookie": f"ketnoi_session={second}"},
        allow_redirects=False,
    )
    assert response.status == 303
    # A copy of the cookie kept by an attacker is worthless after sign-out.
    assert (await client.get("/api/units", headers={"Cookie": f"ketnoi_session={second}"})).status == 401
    async with app[state.DB]() as session:
        assert (await session.execute(select(func.count(UserSession.id)))).scalar_one() == 0
        actions = list((await session.execute(select(AuditEntry.action))).scalars())
    assert actions.count("signin") == 2 and "signout" in actions


async def test_idle_and_absolute_timeouts(
    client: Client, world: World, clock: ManualClock, app: web.Application
) -> None:
    await sign_in(client, world.technician)
    await clock.advance(29 * 60)
    assert (await client.get("/api/units")).status == 200
    await clock.advance(31 * 60)  # idle for longer than 30 minutes
    assert (await client.get("/", allow_redirects=False)).status == 302
    async with app[state.DB]() as session:  # the expired session is gone from the server
        assert (await session.execute(select(func.count(UserSession.id)))).scalar_one() == 0
    assert (await client.get("/api/units")).status == 401
    await sign_in(client, world.technician)
    for _ in range(26):  # active every 28 minutes, but past the 12 h absolute limit
        await clock.advance(28 * 60)
        response = await client.get("/api/units")
    assert response.status == 401
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/signin")


async def test_csrf_token_and_origin_are_required(client: Client, world: World) -> None:
    token = await sign_in(client, world.technician)
    path = f"/api/units/{world.school}/enrolment-codes"
    refused = [
        await client.post(path, headers=ORIGIN),  # no token
        await client.post(path, headers={**ORIGIN, "X-CSRF-Token": "wrong"}),
        await client.post(path, headers={"Origin": "http://evil.test", "X-CSRF-Token": token}),
        await client.post(path, headers={"X-CSRF-Token": token}),  # neither Origin nor Referer
        await client.post(path, headers={"Origin": "null", "X-CSRF-Token": token}),
        await client.post(path, headers={"Referer": "http://controller.test.evil.test/x", "X-CSRF-Token": token}),
    ]
    for response in refused:
        assert response.status == 403
        assert "cross-site" in (await response.json())["error"]
    ok = await client.post(path, headers={"Referer": "http://controller.test/units/1", "X-CSRF-Token": token})
    assert ok.status == 201
    form = await client.post(f"/units/{world.school}/enrolment-codes", data={"csrf_token": "nope"}, headers=ORIGIN)
    assert form.status == 403
    form = await client.post(f"/units/{world.school}/enrolment-codes", data={"csrf_token": token}, headers=ORIGIN)
    assert form.status == 200
    # Sign-in itself refuses a cross-site post (login CSRF).
    response = await client.post(
        "/signin", data={"username": world.technician, "password": PASSWORD}, headers={"Origin": "http://evil.test"}
    )
    assert response.status == 403


async def test_lockout_with_the_same_message_whatever_failed(client: Client, world: World, clock: ManualClock) -> None:
    messages = set()
    for _ in range(5):
        status, page = await _post_signin(client, world.technician, "wrong password!")
        assert status == 401
        messages.add(BAD_LOGIN in page)
    status, page = await _post_signin(client, world.technician, PASSWORD)  # locked: even the right password fails
    assert status == 401 and BAD_LOGIN in page
    status, unknown = await _post_signin(client, "nobody", PASSWORD)
    assert status == 401 and BAD_LOGIN in unknown
    assert messages == {True}
    await clock.advance(15 * 60 + 1)
    status, _ = await _post_signin(client, world.technician, PASSWORD)
    assert status == 303


async def test_flood_from_one_address_gets_429(client: Client, world: World, clock: ManualClock) -> None:
    statuses = [(await _post_signin(client, f"user{i}", "x" * 12))[0] for i in range(25)]
    assert statuses[:20] == [401] * 20
    assert set(statuses[20:]) == {429}
    await clock.advance(61)
    assert (await _post_signin(client, "user0", "x" * 12))[0] == 401


async def test_next_is_never_an_open_redirect(client: Client, world: World) -> None:
    for target in ("//evil.test/", "http://evil.test/", "/\\evil.test"):
        response = await client.post(
            "/signin",
            data={"username": world.technician, "password": PASSWORD, "next": target},
            headers=ORIGIN,
            allow_redirects=False,
        )
        assert response.status == 303 and response.headers["Location"] == "/"
