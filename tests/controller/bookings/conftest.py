"""Every test here runs on SQLite and on PostgreSQL (a schema of its own), with rooms at two schools."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from common.clock import ManualClock
from controller import accounts, state
from controller.config import ControllerConfig
from controller.db.engine import session_factory
from controller.db.migrate import upgrade
from controller.db.models import Role, UnitKind
from controller.security.passwords import Passwords, cheap_hasher
from controller.security.sessions import Principal
from controller.units import create_unit
from tests.controller.conftest import ORIGIN, PASSWORD, POSTGRES_URL, Client, World, make_config, seed, sign_in


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> ControllerConfig:
    if request.param == "sqlite":
        return make_config(tmp_path)
    schema = request.getfixturevalue("pg_schema")
    return make_config(tmp_path, database_url=POSTGRES_URL, database_schema=schema)


@dataclass
class Site:
    world: World
    room: int
    """At world.school (Hoa Sen)."""
    room2: int
    """Also at world.school."""
    other_room: int
    """At world.other_school (Sao Mai)."""
    district_room: int
    booker: str = "booker"
    staff: str = "staff"


class Caller:
    """A signed-in client that sends the CSRF token with every change."""

    def __init__(self, client: Client, token: str) -> None:
        self.client = client
        self.token = token

    def _headers(self) -> dict[str, str]:
        return {**ORIGIN, "X-CSRF-Token": self.token}

    async def get(self, path: str, **params: str) -> tuple[int, dict[str, Any]]:
        response = await self.client.get(path, params=params)
        return response.status, await response.json()

    async def send(self, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any]]:
        response = await self.client.request(method, path, json=body, headers=self._headers())
        return response.status, await response.json()


async def as_user(client: Client, username: str) -> Caller:
    return Caller(client, await sign_in(client, username))


@pytest.fixture
async def site(client: Client, app: web.Application) -> Site:
    world = await seed(app)
    now = app[state.CLOCK].now()
    async with app[state.DB].begin() as session:
        for username, role, unit in (
            ("booker", Role.DEPARTMENT_BOOKER, world.department),
            ("staff", Role.SCHOOL_STAFF, world.school),
        ):
            await accounts.create_user(
                session, app[state.PASSWORDS], username=username, password=PASSWORD, role=role, unit_id=unit, now=now
            )
    admin = await as_user(client, world.admin)
    ids = []
    for unit, name in (
        (world.school, "Phòng họp A"),
        (world.school, "Phòng học 2"),
        (world.other_school, "Phòng họp Sao Mai"),
        (world.district, "Hội trường Quận 1"),
    ):
        status, body = await admin.send(
            "POST", f"/api/units/{unit}/rooms", {"name": name, "capacity": 40, "equipment": ["camera", "tv"]}
        )
        assert status == 201, body
        ids.append(int(str(body["id"])))
    return Site(world, ids[0], ids[1], ids[2], ids[3])


async def unit_and_admin(engine: AsyncEngine, clock: ManualClock) -> tuple[int, Principal]:
    """For tests on an engine of their own (no app): the migrated schema, a department and an admin."""
    await upgrade(engine)
    now = clock.now()
    async with session_factory(engine).begin() as session:
        unit = await create_unit(session, name="Sở", kind=UnitKind.DEPARTMENT, now=now)
        user = await accounts.create_user(
            session, Passwords(cheap_hasher()), username="admin", password=PASSWORD, role=Role.ADMIN, now=now
        )
    return unit.id, Principal(user.id, user.username, Role.ADMIN, None, 0, "")
