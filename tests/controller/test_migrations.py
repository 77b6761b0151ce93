"""The Alembic migrations run up and down on SQLite and on PostgreSQL; the audit log refuses edits."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from controller import audit
from controller.db.engine import create_engine, session_factory
from controller.db.migrate import downgrade, upgrade
from controller.db.models import Role, SsoLink, User
from controller.sso.links import link_key
from tests.controller.conftest import POSTGRES_URL

TABLES = {"units", "users", "sessions", "enrolment_codes", "agents", "cameras", "audit_log", "alembic_version"}
TABLES |= {"rooms", "bookings", "booking_rooms", "occurrences", "room_occupancy"}  # 0002
TABLES |= {"api_tokens", "classes", "children", "class_placements", "guardians", "consents", "class_staff"}  # 0003
TABLES |= {"calendar_feed_tokens"}  # 0004
TABLES |= {"camera_assignments", "viewing_windows", "viewing_holidays", "live_policies", "live_sessions"}  # 0005
TABLES |= {"sso_links"}  # 0006


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def _exercise(engine: AsyncEngine) -> None:
    await upgrade(engine)
    await upgrade(engine)  # idempotent
    assert await _tables(engine) == TABLES
    factory = session_factory(engine)
    async with factory.begin() as session:
        audit.record(session, at=datetime.now(UTC), actor="test", action="test.entry", details={"n": 1})
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(statement))
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT actor FROM audit_log"))).scalar_one() == "test"
    await downgrade(engine, "base")
    assert await _tables(engine) == {"alembic_version"}
    await upgrade(engine)
    assert await _tables(engine) == TABLES


async def test_migrations_on_sqlite(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'c.db'}")
    try:
        await _exercise(engine)
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_migrations_on_postgresql(pg_schema: str) -> None:
    engine = create_engine(POSTGRES_URL, pg_schema)
    try:
        await _exercise(engine)
        async with engine.connect() as conn:
            schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
        assert schema == pg_schema
    finally:
        await engine.dispose()


ISSUER = "https://sso.sogd.example.vn"


async def _moves_sso_markers(engine: AsyncEngine) -> None:
    """0006 moves `!sso:` password markers into sso_links (issuer and subject from the command's audit entry
    when there is one), leaves those users without a password, and downgrade puts the markers back."""
    await upgrade(engine, "0005")
    at = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
    linked_key, created_key = link_key(ISSUER, "s-linked"), link_key(ISSUER, "s-created")
    factory = session_factory(engine)
    async with factory.begin() as session:
        for name, password_hash in [("linked", f"!sso:{linked_key}"), ("created", f"!sso:{created_key}"),
                                    ("local", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA")]:  # fmt: skip
            session.add(User(username=name, password_hash=password_hash, role=Role.ADMIN, created_at=at))
        audit.record(session, at=at, actor="cli", action="sso.link", target="user:linked",
                     details={"issuer": ISSUER, "subject": "s-linked"})  # fmt: skip
        audit.record(session, at=at, actor="cli", action="sso.link", target="user:gone",
                     details={"issuer": ISSUER, "subject": "s-relinked-since"})  # fmt: skip
    await upgrade(engine)
    async with factory() as session:
        rows = (await session.execute(select(User.username, SsoLink).join(SsoLink, SsoLink.user_id == User.id))).all()
        moved = {name: (link.link_key, link.issuer, link.subject, link.created_by) for name, link in rows}
        hashes = {name: value for name, value in await session.execute(select(User.username, User.password_hash))}
    assert moved == {
        "linked": (linked_key, ISSUER, "s-linked", "cli"),
        "created": (created_key, None, None, "migration"),  # filled in at the next sign-in
    }
    assert hashes["linked"] == hashes["created"] == "!" and hashes["local"].startswith("$argon2id$")
    await downgrade(engine, "0005")
    async with factory() as session:
        hashes = {name: value for name, value in await session.execute(select(User.username, User.password_hash))}
    assert hashes["linked"] == f"!sso:{linked_key}" and hashes["created"] == f"!sso:{created_key}"
    assert hashes["local"].startswith("$argon2id$")
    assert "sso_links" not in await _tables(engine)


async def test_0006_moves_sso_markers_on_sqlite(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    try:
        await _moves_sso_markers(engine)
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_0006_moves_sso_markers_on_postgresql(pg_schema: str) -> None:
    engine = create_engine(POSTGRES_URL, pg_schema)
    try:
        await _moves_sso_markers(engine)
    finally:
        await engine.dispose()
