"""The Alembic migrations run up and down on SQLite and on PostgreSQL; the audit log refuses edits."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from controller import audit
from controller.db.engine import create_engine, session_factory
from controller.db.migrate import downgrade, upgrade
from tests.controller.conftest import POSTGRES_URL

TABLES = {"units", "users", "sessions", "enrolment_codes", "agents", "cameras", "audit_log", "alembic_version"}
TABLES |= {"rooms", "bookings", "booking_rooms", "occurrences", "room_occupancy"}  # 0002
TABLES |= {"api_tokens", "classes", "children", "class_placements", "guardians", "consents", "class_staff"}  # 0003
TABLES |= {"calendar_feed_tokens"}  # 0004
TABLES |= {"camera_assignments", "viewing_windows", "viewing_holidays", "live_policies", "live_sessions"}  # 0005


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
