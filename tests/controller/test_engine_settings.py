"""The database engine's settings that the bookings' throughput relies on: SQLite in WAL with synchronous=NORMAL
(no fsync per commit under the write lock), PostgreSQL without a ping before every checkout."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from controller.db.engine import create_engine
from tests.controller.conftest import POSTGRES_URL


async def test_sqlite_runs_wal_with_synchronous_normal(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/c.db")
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
            assert (await connection.execute(text("PRAGMA synchronous"))).scalar_one() == 1  # NORMAL
            assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgresql_connections_are_not_pinged_at_checkout() -> None:
    engine = create_engine(POSTGRES_URL)
    try:
        assert engine.pool._pre_ping is False
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
