"""SQLite's writer thread: creates through it race edits and cancellations through the SQLAlchemy engine on the
same file, and a batch of jobs commits together with each refusal undone alone."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import ManualClock
from controller.bookings.drafts import BookingDetail, BookingDraft, Conflict, RoomDraft
from controller.bookings.models import BookingMode, RoomOccupancy
from controller.bookings.service import BookingService
from controller.db.engine import create_engine, session_factory
from controller.db.sqlite_writer import SqliteWriter
from controller.security.sessions import Principal
from tests.controller.bookings.conftest import unit_and_admin

START = datetime(2026, 1, 6, 2, 0, tzinfo=UTC)
ROUNDS = 20


@dataclass
class Bench:
    service: BookingService
    db: async_sessionmaker[AsyncSession]
    writer: SqliteWriter
    principal: Principal
    room_id: int

    def draft(self, title: str, start: datetime, minutes: int) -> BookingDraft:
        return BookingDraft(title, BookingMode.MEETING, self.room_id, start, start + timedelta(minutes=minutes))

    async def occupancy(self, start: datetime, end: datetime) -> int:
        query = select(func.count()).where(
            RoomOccupancy.room_id == self.room_id, RoomOccupancy.starts_at < end, RoomOccupancy.ends_at > start
        )
        async with self.db() as session:
            return (await session.execute(query)).scalar_one()


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    path = tmp_path / "c.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    clock = ManualClock()
    unit_id, principal = await unit_and_admin(engine, clock)
    writer = SqliteWriter(str(path))
    await writer.start()
    service = BookingService(session_factory(engine), clock, "sqlite", writer)
    try:
        room = await service.create_room(principal, unit_id, RoomDraft(name="Phòng A", capacity=10))
        yield Bench(service, session_factory(engine), writer, principal, room.id)
    finally:
        await writer.close()
        await engine.dispose()


async def test_a_create_races_a_move_of_another_booking_exactly_one_wins(bench: Bench) -> None:
    """The move (SQLAlchemy, conflict-checked) and the create (writer thread) want the same hour."""
    for index in range(ROUNDS):
        target = START + timedelta(days=1, hours=index)
        first = bench.draft(f"X{index}", START + timedelta(hours=index), 45)
        moved = await bench.service.create(bench.principal, first)
        changes = {"starts_at": target, "ends_at": target + timedelta(minutes=45)}
        results = await asyncio.gather(
            bench.service.update_series(bench.principal, moved.booking.id, changes),
            bench.service.create(bench.principal, bench.draft(f"Y{index}", target + timedelta(minutes=15), 45)),
            return_exceptions=True,
        )
        kinds = [type(result).__name__ for result in results]
        assert sorted(kinds) == ["BookingDetail", "Conflict"], results
        assert await bench.occupancy(target, target + timedelta(hours=1)) == 1
    assert bench.writer.jobs == 2 * ROUNDS


async def test_a_create_races_a_cancellation_of_the_booking_it_clashes_with(bench: Bench) -> None:
    """Whichever goes first, no error but the conflict, and the room holds the new booking only if it won."""
    for index in range(ROUNDS):
        start = START + timedelta(hours=index)
        first = await bench.service.create(bench.principal, bench.draft(f"X{index}", start, 45))
        cancelled, created = await asyncio.gather(
            bench.service.cancel_series(bench.principal, first.booking.id),
            bench.service.create(bench.principal, bench.draft(f"Y{index}", start + timedelta(minutes=15), 45)),
            return_exceptions=True,
        )
        assert isinstance(cancelled, BookingDetail) and cancelled.booking.cancelled_at is not None, cancelled
        assert isinstance(created, BookingDetail | Conflict), created
        held = await bench.occupancy(start, start + timedelta(hours=1))
        assert held == (1 if isinstance(created, BookingDetail) else 0)


async def test_a_batch_commits_together_and_a_refused_job_undoes_only_its_own_writes(bench: Bench) -> None:
    def setup(connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE scratch (n INTEGER)")

    await bench.writer.run(setup)

    def insert(n: int, refuse: bool = False) -> Callable[[sqlite3.Connection], int]:
        def work(connection: sqlite3.Connection) -> int:
            connection.execute("INSERT INTO scratch (n) VALUES (?)", (n,))
            if refuse:
                raise Conflict("refused")
            return n

        return work

    before = bench.writer.transactions
    async with bench.writer.hold():  # the jobs queue up behind the hold and go in one transaction
        jobs = [bench.writer.submit(insert(n, refuse=n == 2)) for n in (1, 2, 3)]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    assert results[0] == 1 and results[2] == 3 and isinstance(results[1], Conflict), results
    assert bench.writer.transactions == before + 1

    def rows(connection: sqlite3.Connection) -> list[int]:
        return [n for (n,) in connection.execute("SELECT n FROM scratch ORDER BY n")]

    assert await bench.writer.run(rows) == [1, 3]


async def test_a_job_that_breaks_the_transaction_fails_its_batch_and_the_thread_goes_on(bench: Bench) -> None:
    def breaks(connection: sqlite3.Connection) -> None:
        connection.execute("ROLLBACK")  # the writer's RELEASE of the job's savepoint then fails

    def one(connection: sqlite3.Connection) -> int:
        return 1

    async with bench.writer.hold():
        broken, after = bench.writer.submit(breaks), bench.writer.submit(one)
    results = await asyncio.gather(broken, after, return_exceptions=True)
    assert all(isinstance(result, sqlite3.Error) for result in results), results
    assert await bench.writer.run(one) == 1
