"""A real controller per test: a real SQLite file (or a PostgreSQL schema of its own), a manual clock."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from common.clock import ManualClock
from controller import accounts, state
from controller.app import build_app
from controller.config import ControllerConfig
from controller.db.models import Role, SchoolLevel, UnitKind
from controller.security.passwords import Passwords, cheap_hasher
from controller.units import create_unit

PUBLIC_URL = "http://controller.test"
ORIGIN = {"Origin": PUBLIC_URL}
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
PASSWORD = "correct horse battery"

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
Client = TestClient[web.Request, web.Application]


@dataclass
class World:
    """Units and users every test can use: a department, two districts, a kindergarten in each."""

    department: int
    district: int
    other_district: int
    school: int
    other_school: int
    admin: str = "admin"
    technician: str = "tech"
    other_technician: str = "othertech"
    teacher: str = "teacher"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_config(tmp_path: Path, **overrides: object) -> ControllerConfig:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "public_url": PUBLIC_URL,
        "cookie_secure": False,
        "status_interval_s": 5.0,
        "agent_offline_timeout_s": 60.0,
    }
    values.update(overrides)
    return ControllerConfig.model_validate(values)


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A PostgreSQL schema of this test's own, dropped at the end (concurrent runs do not collide)."""
    schema = f"t_{secrets.token_hex(6)}"
    engine = create_async_engine(POSTGRES_URL)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield schema
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await engine.dispose()


@pytest.fixture
def config(tmp_path: Path) -> ControllerConfig:
    return make_config(tmp_path)


@pytest.fixture
def app(config: ControllerConfig, clock: ManualClock) -> web.Application:
    return build_app(config, clock=clock, passwords=Passwords(cheap_hasher()), secret_key=b"k" * 32)


@pytest.fixture
async def client(app: web.Application, aiohttp_client: AiohttpClient) -> Client:
    """`app` (and so its database, a PostgreSQL schema included) is set up before `aiohttp_client`, so the server
    and its background tasks stop before the schema is dropped (fixtures are torn down in reverse order)."""
    return await aiohttp_client(app)


async def seed(app: web.Application) -> World:
    now = app[state.CLOCK].now()
    passwords = app[state.PASSWORDS]
    async with app[state.DB].begin() as session:
        department = await create_unit(session, name="Sở GD&ĐT", kind=UnitKind.DEPARTMENT, now=now)
        district = await create_unit(
            session, name="Phòng GD Quận 1", kind=UnitKind.DISTRICT, parent_id=department.id, now=now
        )
        other = await create_unit(
            session, name="Phòng GD Quận 2", kind=UnitKind.DISTRICT, parent_id=department.id, now=now
        )
        school = await create_unit(
            session,
            name="Mầm non <b>Hoa Sen</b>",
            kind=UnitKind.SCHOOL,
            school_level=SchoolLevel.KINDERGARTEN,
            parent_id=district.id,
            camera_networks=["198.18.1.0/24"],
            now=now,
        )
        other_school = await create_unit(
            session,
            name="Mầm non Sao Mai",
            kind=UnitKind.SCHOOL,
            school_level=SchoolLevel.KINDERGARTEN,
            parent_id=other.id,
            now=now,
        )
        world = World(department.id, district.id, other.id, school.id, other_school.id)
        for username, role, unit in (
            (world.admin, Role.ADMIN, None),
            (world.technician, Role.DISTRICT_TECHNICIAN, district.id),
            (world.other_technician, Role.DISTRICT_TECHNICIAN, other.id),
            (world.teacher, Role.TEACHER, school.id),
        ):
            await accounts.create_user(
                session, passwords, username=username, password=PASSWORD, role=role, unit_id=unit, now=now
            )
    return world


@pytest.fixture
async def world(client: Client, app: web.Application) -> World:
    return await seed(app)


async def sign_in(client: Client, username: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token (read from a page's form)."""
    response = await client.post(
        "/signin", data={"username": username, "password": password, "next": "/"}, headers=ORIGIN, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    return await csrf_token(client)


async def csrf_token(client: Client) -> str:
    response = await client.get("/api/session")
    assert response.status == 200, await response.text()
    token = (await response.json())["csrf_token"]
    assert isinstance(token, str)
    return token


def cookie_value(client: Client, name: str = "ketnoi_session") -> str | None:
    for cookie in client.session.cookie_jar:
        if cookie.key == name:
            return cookie.value
    return None
