"""The guards under the service: PostgreSQL's exclusion constraint itself, and SQLite's write lock across engines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from common.clock import ManualClock
from controller.bookings.drafts import BookingDraft, Conflict, RoomDraft
from controller.bookings.models import Booking, BookingMode, Occurrence, RoomOccupancy
from controller.bookings.service import BookingService
from controller.db.engine import create_engine, session_factory
from controller.db.sqlite_writer import SqliteWriter
from controller.security.sessions import Principal
from tests.controller.bookings.conftest import unit_and_admin
from tests.controller.conftest import POSTGRES_URL

START = datetime(2026, 1, 6, 2, 0, tzinfo=UTC)


async def _room_and_admin(engine: AsyncEngine, clock: ManualClock) -> tuple[int, Principal]:
    unit_id, principal = await unit_and_admin(engine, clock)
    service = BookingService(session_factory(engine), clock, engine.dialect.name)
    room = await service.create_room(principal, unit_id, RoomDraft(name="Phòng A", capacity=10))
    return room.id, principal


@pytest.mark.postgres
async def test_postgresql_refuses_overlapping_occupancy_by_itself(pg_schema: str) -> None:
    engine = create_engine(POSTGRES_URL, pg_schema)
    try:
        room_id, principal = await _room_and_admin(engine, ManualClock())
        db = session_factory(engine)
        async with db.begin() as session:
            booking_id = (
                await session.execute(
                    insert(Booking)
                    .values(
                        title="t", agenda="", mode=BookingMode.MEETING, organizer_id=principal.user_id,
                        host_room_id=room_id, starts_at=START, ends_at=START + timedelta(hours=3),
                        time_zone="Asia/Ho_Chi_Minh", exdates=[], created_at=START, updated_at=START,
                    )
                    .returning(Booking.id)
                )
            ).scalar_one()  # fmt: skip
            occurrence_ids = []
            for hour in range(3):
                at = START + timedelta(hours=hour)
                occurrence_ids.append(
                    (
                        await session.execute(
                            insert(Occurrence)
                            .values(booking_id=booking_id, recurrence_id=at, starts_at=at, ends_at=at,
                                    cancelled=False, detached=False)
                            .returning(Occurrence.id)
                        )
                    ).scalar_one()
                )  # fmt: skip

        def row(index: int, start: datetime, minutes: int) -> dict[str, object]:
            return {
                "room_id": room_id, "occurrence_id": occurrence_ids[index], "booking_id": booking_id,
                "starts_at": start, "ends_at": start + timedelta(minutes=minutes),
            }  # fmt: skip

        async with db.begin() as session:
            await session.execute(insert(RoomOccupancy), [row(0, START, 60), row(1, START + timedelta(hours=1), 60)])
        with pytest.raises(IntegrityError, match="ex_room_occupancy_overlap"):
            async with db.begin() as session:
                await session.execute(insert(RoomOccupancy), [row(2, START + timedelta(minutes=59), 10)])
    finally:
        await engine.dispose()


@pytest.mark.parametrize("writers", [0, 1, 2], ids=["sqlalchemy-both", "writer-and-sqlalchemy", "writer-both"])
async def test_two_engines_on_one_sqlite_file_never_both_win(tmp_path: Path, writers: int) -> None:
    """Two services with their own engines and locks, as two controller processes would have; each creates
    through its own writer thread (controller.db.sqlite_writer) or through SQLAlchemy."""
    path = tmp_path / "c.db"
    url = f"sqlite+aiosqlite:///{path}"
    clock = ManualClock()
    first, second = create_engine(url), create_engine(url)
    threads = [SqliteWriter(str(path)) for _ in range(writers)]
    try:
        room_id, principal = await _room_and_admin(first, clock)
        for writer in threads:
            await writer.start()
        given: list[SqliteWriter | None] = [*threads, None, None][:2]
        pairs = zip((first, second), given, strict=True)
        services = [BookingService(session_factory(e), clock, "sqlite", writer) for e, writer in pairs]
        for index in range(20):
            start = START + timedelta(hours=index)
            length = timedelta(minutes=40)
            drafts = [
                BookingDraft(f"{name}{index}", BookingMode.MEETING, room_id, start + offset, start + offset + length)
                for name, offset in (("A", timedelta()), ("B", timedelta(minutes=20)))
            ]
            results = await asyncio.gather(
                *(service.create(principal, draft) for service, draft in zip(services, drafts, strict=True)),
                return_exceptions=True,
            )
            kinds = sorted(type(result).__name__ for result in results)
            assert kinds == ["BookingDetail", "Conflict"], results
            loser = next(result for result in results if isinstance(result, Conflict))
            assert "'Phòng A' is already booked by" in str(loser)
        assert sum(writer.jobs for writer in threads) == 20 * writers  # the writers made their creates
    finally:
        for writer in threads:
            await writer.close()
        await first.dispose()
        await second.dispose()
