"""A session's `last_seen` is written at most once per resolution, and the idle timeout still counts from it."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from sqlalchemy import select

from common.clock import ManualClock
from controller import state
from controller.db.models import UserSession
from controller.security.sessions import LAST_SEEN_RESOLUTION
from tests.controller.conftest import Client, World, sign_in


async def _last_seen(app: web.Application) -> datetime:
    async with app[state.DB]() as session:
        value = (await session.execute(select(UserSession.last_seen))).scalar_one()
    assert isinstance(value, datetime)
    return value


async def test_last_seen_is_written_once_per_resolution(
    client: Client, world: World, clock: ManualClock, app: web.Application
) -> None:
    await sign_in(client, world.technician)
    signed_in = await _last_seen(app)
    step = LAST_SEEN_RESOLUTION.total_seconds() / 4
    for _ in range(3):  # three requests within the resolution: no write
        await clock.advance(step)
        assert (await client.get("/api/units")).status == 200
    assert await _last_seen(app) == signed_in
    await clock.advance(step)  # now a whole resolution after the last write: written
    assert (await client.get("/api/units")).status == 200
    assert await _last_seen(app) == signed_in + LAST_SEEN_RESOLUTION


async def test_idle_timeout_counts_from_the_last_write(
    client: Client, world: World, clock: ManualClock, app: web.Application
) -> None:
    """Requests every 59 s for 40 minutes keep a 30-minute idle session alive; then 31 idle minutes end it."""
    await sign_in(client, world.technician)
    for _ in range(40):
        await clock.advance(59)
        assert (await client.get("/api/units")).status == 200
    await clock.advance(31 * 60)
    assert (await client.get("/api/units")).status == 401
