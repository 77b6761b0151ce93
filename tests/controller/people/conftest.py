"""The people tests run on SQLite and on PostgreSQL: `papp` and `pclient` are parametrized over both."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from aiohttp import web

from common.clock import ManualClock
from controller import accounts, state
from controller.app import build_app
from controller.db.models import Role
from controller.people.models import Child, ClassPlacement, SchoolClass
from controller.security.passwords import Passwords, cheap_hasher
from tests.controller.conftest import PASSWORD, POSTGRES_URL, AiohttpClient, Client, World, make_config, seed

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def papp(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> web.Application:
    overrides: dict[str, object] = {}
    if request.param == "postgresql":
        overrides = {"database_url": POSTGRES_URL, "database_schema": request.getfixturevalue("pg_schema")}
    config = make_config(tmp_path, **overrides)
    return build_app(config, clock=clock, passwords=Passwords(cheap_hasher()), secret_key=b"q" * 32)


@pytest.fixture
async def pclient(aiohttp_client: AiohttpClient, papp: web.Application) -> Client:
    return await aiohttp_client(papp)


@dataclass
class People(World):
    klass: int = 0
    other_class: int = 0
    other_school_class: int = 0
    child: int = 0
    sibling: int = 0
    other_child: int = 0
    parent: str = "parent"
    other_parent: str = "otherparent"
    staff: str = "staff"
    parent_id: int = 0


async def seed_people(app: web.Application) -> People:
    """The conftest world, plus classes, children, two parents and a school staff member."""
    world = await seed(app)
    now = app[state.CLOCK].now()
    async with app[state.DB].begin() as session:
        classes = [
            SchoolClass(unit_id=unit, school_year="2025-2026", name=name, created_at=now)
            for unit, name in ((world.school, "Lá 1"), (world.school, "<i>Lá 2</i>"), (world.other_school, "Chồi 1"))
        ]
        session.add_all(classes)
        await session.flush()
        children = [
            Child(
                unit_id=unit,
                code=code,
                full_name=name,
                date_of_birth=date(2021, 3, 4),
                class_id=klass.id,
                created_at=now,
            )
            for unit, code, name, klass in (
                (world.school, "HS001", "Nguyễn Văn An", classes[0]),
                (world.school, "HS002", "Trần Thị Bình", classes[0]),
                (world.other_school, "HS001", "Lê Văn Cường", classes[2]),
            )
        ]
        session.add_all(children)
        await session.flush()
        session.add_all(ClassPlacement(child_id=c.id, class_id=c.class_id or 0, started_at=now) for c in children)
        passwords = app[state.PASSWORDS]
        ids = {}
        for username, role, unit in (
            ("parent", Role.PARENT, world.school),
            ("otherparent", Role.PARENT, world.other_school),
            ("staff", Role.SCHOOL_STAFF, world.school),
        ):
            user = await accounts.create_user(
                session, passwords, username=username, password=PASSWORD, role=role, unit_id=unit, now=now
            )
            ids[username] = user.id
    people = People(**vars(world))
    people.klass, people.other_class, people.other_school_class = (c.id for c in classes)
    people.child, people.sibling, people.other_child = (c.id for c in children)
    people.parent_id = ids["parent"]
    return people


@pytest.fixture
async def people(pclient: Client, papp: web.Application) -> People:
    return await seed_people(papp)
