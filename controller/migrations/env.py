"""Alembic environment: runs on the connection the controller hands over (aiosqlite or asyncpg).

`controller.db.migrate` passes a synchronous facade of an async connection in `config.attributes["connection"]`;
run by the `alembic` command instead, set sqlalchemy.url and the engine is made here.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from controller.bookings import models as _bookings_models  # noqa: F401 (registers the tables)
from controller.db.models import Base
from controller.people import models as _people_models  # noqa: F401 (registers the tables)

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or run the migrations with `python -m controller migrate`")
    asyncio.run(_run_with_own_engine(url))


main()
