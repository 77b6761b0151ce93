"""SQLite's cookie-session lookup through the reader thread answers as the SQLAlchemy path does (a signed-out
session or a disabled user is refused at once), and the controller starts with its pool's connections open."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import update

from common.clock import ManualClock
from controller import state
from controller.db.models import User
from controller.security.access import SESSION_READER
from controller.security.sessions import LAST_SEEN_RESOLUTION
from tests.controller.conftest import ORIGIN, Client, World, sign_in


async def test_the_reader_resolves_sessions_and_sees_sign_out_and_disabling_at_once(
    client: Client, world: World, app: web.Application, clock: ManualClock
) -> None:
    reader = app[SESSION_READER]
    token = await sign_in(client, world.technician)
    before = reader.jobs
    response = await client.get("/api/session")
    assert response.status == 200 and (await response.json())["username"] == world.technician
    assert reader.jobs == before + 1  # the lookup went through the reader
    response = await client.post("/signout", data={"csrf_token": token}, headers=ORIGIN, allow_redirects=False)
    assert response.status in (302, 303)
    assert (await client.get("/api/session")).status == 401

    await sign_in(client, world.teacher)
    assert (await client.get("/api/session")).status == 200
    async with app[state.DB].begin() as session:
        await session.execute(update(User).where(User.username == world.teacher).values(disabled=True))
    assert (await client.get("/api/session")).status == 401
    await clock.advance(LAST_SEEN_RESOLUTION.total_seconds())  # a write due: the SQLAlchemy path, still refused
    assert (await client.get("/api/session")).status == 401


async def test_the_pool_is_open_when_the_controller_answers(client: Client, app: web.Application) -> None:
    pool = app[state.ENGINE].pool
    assert pool.checkedin() >= pool.size() > 1  # type: ignore[attr-defined]
