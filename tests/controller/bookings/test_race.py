"""Two clashing requests at once: exactly one wins, every time, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from aiohttp import web
from sqlalchemy import func, select

from controller import state
from controller.bookings.models import RoomOccupancy
from tests.controller.bookings.conftest import Site, as_user
from tests.controller.conftest import Client

ROUNDS = 25


async def test_two_clashing_requests_at_once_exactly_one_wins(client: Client, site: Site, app: web.Application) -> None:
    booker = await as_user(client, site.booker)
    base = datetime(2026, 1, 6, 1, 0, tzinfo=UTC)
    for index in range(ROUNDS):
        start = base + timedelta(hours=index)
        # Different host rooms, one shared participant room, overlapping by 30 minutes.
        first = {
            "title": f"A{index}", "mode": "meeting", "host_room": site.room, "participant_rooms": [site.other_room],
            "start": start.isoformat(), "end": (start + timedelta(minutes=45)).isoformat(),
        }  # fmt: skip
        second = {
            "title": f"B{index}", "mode": "training", "host_room": site.room2, "participant_rooms": [site.other_room],
            "start": (start + timedelta(minutes=15)).isoformat(), "end": (start + timedelta(minutes=50)).isoformat(),
        }  # fmt: skip
        answers = await asyncio.gather(
            booker.send("POST", "/api/bookings", first), booker.send("POST", "/api/bookings", second)
        )
        statuses = sorted(status for status, _ in answers)
        assert statuses == [201, 409], answers
        loser = next(body for status, body in answers if status == 409)
        assert "'Phòng họp Sao Mai'" in str(loser["error"]) and f"{index}'" in str(loser["error"]), loser
    async with app[state.DB]() as session:
        rows = (await session.execute(select(func.count()).select_from(RoomOccupancy))).scalar_one()
    assert rows == ROUNDS * 2
