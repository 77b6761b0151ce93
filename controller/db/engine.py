"""The async engine and session factory for SQLite (aiosqlite) or PostgreSQL (asyncpg)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

logger = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL with synchronous=NORMAL: a commit does not wait for an fsync (3 ms here), which SQLite's single
    writer would otherwise hold its lock through; the file stays consistent, and a power loss (not a crash of
    the process) can lose the last commits before a checkpoint. PostgreSQL is the backend for production."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_engine(url: str, schema: str | None = None) -> AsyncEngine:
    """An engine for `url`; on PostgreSQL, `schema` becomes the connection's search_path.

    For SQLite the file's directory is created if missing (called before serving, not per request).
    """
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args=connect_args)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if schema is not None:
        connect_args["server_settings"] = {"search_path": schema}
    # No pool_pre_ping: it was a round trip before every checkout (two per request, about a tenth of the
    # controller's time per booking). A connection broken by a database restart fails its statement once;
    # SQLAlchemy then sees the disconnect and discards the whole pool, so the next request connects afresh.
    return create_async_engine(url, connect_args=connect_args)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
