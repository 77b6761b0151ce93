"""The bookings service: rooms and bookings, checked (access, room policies, conflicts), written and audited.

Concurrency. Two clashing requests must not both win.
- PostgreSQL: the exclusion constraint on `room_occupancy` (migration 0002) is the guard. The check before the
  insert only finds the clashing booking for the message; when two requests pass it at once, the second insert
  waits for the first transaction and then fails with exclusion_violation (23P01), which becomes the same 409.
- SQLite has no such constraint, so the check-and-insert is serialised by SQLite's single write lock, taken
  before anything is read. A create is one job of the writer thread (controller.db.sqlite_writer,
  controller.bookings.sqlite_create): BEGIN IMMEDIATE, the checks and the inserts in one call, so the lock is
  held only while SQLite works. Every other writing transaction here starts with a write statement
  (`_TAKE_WRITE_LOCK`, what BEGIN IMMEDIATE does, without changing how the shared engine begins transactions)
  while the writer thread is held outside any transaction. Both hold across processes (two controllers, or the
  CLI, on one file), through the lock and busy_timeout. Within this process an asyncio lock queues the
  SQLAlchemy writers first, so they wait on the event loop rather than in SQLite's busy-timeout polling, which
  sleeps in steps and would add milliseconds to every contended request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, nullcontext
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import Clock
from controller import audit
from controller.bookings import availability, inserts, records, sqlite_create
from controller.bookings.conflicts import MAX_DURATION, find_clash, self_overlap
from controller.bookings.drafts import (
    BookingDetail,
    BookingDraft,
    Conflict,
    Forbidden,
    Invalid,
    Listed,
    NotFound,
    RoomDraft,
)
from controller.bookings.messages import Text
from controller.bookings.models import (
    Booking,
    BookingRoom,
    Occurrence,
    Room,
    RoomOccupancy,
)
from controller.bookings.policies import PolicyError, check_duration, may_book, may_manage
from controller.bookings.recurrence import Slot
from controller.db.models import Role, Unit
from controller.db.sqlite_writer import SqliteWriter
from controller.security.sessions import Principal
from controller.units import parents

logger = logging.getLogger(__name__)

_TAKE_WRITE_LOCK = text("UPDATE rooms SET id = id WHERE 0 = 1")
_EXCLUSION_VIOLATION = "23P01"
MAX_LIST_SPAN = timedelta(days=62)


def _is_overlap(exc: IntegrityError) -> bool:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code == _EXCLUSION_VIOLATION or "ex_room_occupancy_overlap" in str(orig)


class BookingService:
    """Owns the write path's serialisation; one per application (`controller.web.bookings_api.BOOKINGS`)."""

    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        clock: Clock,
        dialect: str,
        writer: SqliteWriter | None = None,
    ) -> None:
        """`writer` (SQLite only): the writer thread on the same file, which then makes every create."""
        self._db = db
        self._clock = clock
        self._sqlite = dialect == "sqlite"
        self._writer = writer if self._sqlite else None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        if not self._sqlite:
            async with self._db.begin() as session:
                yield session
            return
        held = nullcontext() if self._writer is None else self._writer.hold()
        async with self._lock, held, self._db.begin() as session:
            await session.execute(_TAKE_WRITE_LOCK)
            yield session

    @asynccontextmanager
    async def _creating(self) -> AsyncIterator[AsyncSession]:
        """A create's session. PostgreSQL: autocommit, since the booking is one statement (atomic by itself) and
        a clash is the exclusion constraint's to refuse: no BEGIN and COMMIT round trips, no check before it.
        SQLite: the serialised write transaction, with the check before the inserts."""
        if self._sqlite:
            async with self._writing() as session:
                yield session
            return
        async with self._db() as session:
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            yield session

    # ----- rooms -----

    async def create_room(
        self, principal: Principal, unit_id: int, draft: RoomDraft, address: str | None = None
    ) -> Room:
        now = self._clock.now()
        try:
            async with self._writing() as session:
                if await session.get(Unit, unit_id) is None:
                    raise NotFound(Text("no_such_unit"))
                if not may_manage(principal, await parents(session), unit_id):
                    raise Forbidden(Text("may_not_manage_unit_rooms"))
                room = Room(
                    unit_id=unit_id,
                    name=draft.name,
                    capacity=draft.capacity,
                    equipment=list(draft.equipment),
                    bandwidth_class=draft.bandwidth_class,
                    booking_window_days=draft.booking_window_days,
                    max_duration_minutes=draft.max_duration_minutes,
                    active=draft.active,
                    created_at=now,
                    updated_at=now,
                )
                session.add(room)
                await session.flush()
                audit.record(
                    session,
                    at=now,
                    actor=principal.actor,
                    action="room.create",
                    target=f"room:{room.id}",
                    details={"unit_id": unit_id, "name": draft.name},
                    address=address,
                )
        except IntegrityError as exc:
            raise Conflict(Text("room_name_taken", name=draft.name)) from exc
        return room

    async def update_room(
        self, principal: Principal, room_id: int, changes: Mapping[str, Any], address: str | None = None
    ) -> Room:
        now = self._clock.now()
        try:
            async with self._writing() as session:
                room = await session.get(Room, room_id)
                if room is None:
                    raise NotFound(Text("no_such_room"))
                if not may_manage(principal, await parents(session), room.unit_id):
                    raise Forbidden(Text("may_not_manage_room"))
                for name, value in changes.items():
                    setattr(room, name, list(value) if name == "equipment" else value)
                room.updated_at = now
                audit.record(
                    session,
                    at=now,
                    actor=principal.actor,
                    action="room.update",
                    target=f"room:{room.id}",
                    details={name: records.jsonable(value) for name, value in changes.items()},
                    address=address,
                )
        except IntegrityError as exc:
            raise Conflict(Text("room_name_taken", name=changes.get("name"))) from exc
        return room

    async def room(self, room_id: int) -> tuple[Room, str]:
        """The room and its unit's time zone."""
        async with self._db() as session:
            row = (
                await session.execute(
                    select(Room, Unit.time_zone).join(Unit, Unit.id == Room.unit_id).where(Room.id == room_id)
                )
            ).first()
        if row is None:
            raise NotFound(Text("no_such_room"))
        return row[0], row[1]

    async def rooms_of(self, unit_id: int) -> list[Room]:
        async with self._db() as session:
            if await session.get(Unit, unit_id) is None:
                raise NotFound(Text("no_such_unit"))
            query = select(Room).where(Room.unit_id == unit_id).order_by(Room.name, Room.id)
            return list((await session.execute(query)).scalars())

    # ----- bookings -----

    async def create(self, principal: Principal, draft: BookingDraft, address: str | None = None) -> BookingDetail:
        now = self._clock.now()
        if self._writer is not None:
            request = sqlite_create.CreateRequest(principal, draft, now, address)
            detail = await self._writer.run(functools.partial(sqlite_create.create, request))
            logger.info("audit: %s booking.create booking:%s", principal.actor, detail.booking.id)
            return detail
        slots: list[Slot] = []

        async def attempt() -> BookingDetail:
            nonlocal slots
            async with self._creating() as session:
                may_clash = True
                if self._sqlite and draft.rule is None and len(set(draft.room_ids)) == len(draft.room_ids):
                    # One occurrence: the rooms come with whether each is taken then (one statement less
                    # under SQLite's write lock); the clash is only looked up, for its message, when one is.
                    rows, may_clash = await inserts.rooms_probing(
                        session, draft.room_ids, draft.starts_at, draft.ends_at
                    )
                    rooms, zones = await self._checked_rooms(session, principal, draft.room_ids, (), rows)
                else:
                    rooms, zones = await self._bookable_rooms(session, principal, draft.room_ids, ())
                slots = records.expand_draft(draft, zones[rooms[0].unit_id])
                records.check_policies(rooms, slots, now, draft.attendees, zones)
                write = inserts.insert_booking
                if self._sqlite:
                    if may_clash:
                        await records.refuse_clash(session, draft.room_ids, slots)
                else:
                    write = inserts.insert_booking_pg  # the exclusion constraint checks (23P01: see _raced)
                return await write(
                    session,
                    organizer_id=principal.user_id,
                    actor=principal.actor,
                    draft=draft,
                    rooms=rooms,
                    zones=zones,
                    slots=slots,
                    now=now,
                    address=address,
                )

        return await self._raced(attempt, lambda: draft.room_ids, lambda: slots)

    async def get(self, booking_id: int) -> BookingDetail:
        async with self._db() as session:
            return await records.detail(session, booking_id)

    async def update_series(
        self, principal: Principal, booking_id: int, changes: Mapping[str, Any], address: str | None = None
    ) -> BookingDetail:
        """Apply `changes` (BookingDraft field names) to the series; occurrences that started already stay."""
        now = self._clock.now()
        slots: list[Slot] = []
        room_ids: tuple[int, ...] = ()

        async def attempt() -> BookingDetail:
            nonlocal slots, room_ids
            async with self._writing() as session:
                booking, current_rooms = await self._modifiable(session, principal, booking_id)
                draft = dataclasses.replace(records.draft_of(booking, current_rooms), **changes)
                room_ids = draft.room_ids
                rooms, zones = await self._bookable_rooms(session, principal, room_ids, current_rooms)
                zone = zones[rooms[0].unit_id]
                expanded = records.expand_draft(draft, zone)
                existing = list(
                    (await session.execute(select(Occurrence).where(Occurrence.booking_id == booking_id))).scalars()
                )
                past = [o for o in existing if o.starts_at < now]

                # An occurrence is known by its local date (one a day at most: daily or weekly rules, at most
                # 12 hours long), so moving the series keeps each day's cancellation or detached time.
                def day(moment: datetime) -> date:
                    return moment.astimezone(zone).date()

                past_days = {day(o.recurrence_id) for o in past}
                upcoming = {day(o.recurrence_id): o for o in existing if o.starts_at >= now}
                final: list[Occurrence] = []
                for slot in expanded:
                    if day(slot.recurrence_id) in past_days or slot.recurrence_id < now:
                        continue
                    row = upcoming.pop(day(slot.recurrence_id), None)
                    if row is None:
                        row = Occurrence(booking_id=booking_id, cancelled=False, detached=False)
                        session.add(row)
                    row.recurrence_id = slot.recurrence_id
                    if not row.detached:
                        row.starts_at, row.ends_at = slot.starts_at, slot.ends_at
                    final.append(row)
                live = [o for o in final if not o.cancelled]
                if not live:
                    raise Invalid(Text("series_empty"))
                slots = [Slot(o.recurrence_id, o.starts_at, o.ends_at) for o in live]
                records.check_policies(rooms, slots, now, draft.attendees, zones)
                kept = [Slot(o.recurrence_id, o.starts_at, o.ends_at) for o in past if not o.cancelled]
                overlap = self_overlap([*kept, *slots])
                if overlap is not None:
                    raise Invalid(Text("series_overlap"))
                await records.refuse_clash(session, room_ids, slots, ignore_booking=booking_id)
                # Replace the upcoming occupancy: delete it, then add the new rows (the exclusion constraint
                # sees the old rows gone before the new ones arrive).
                future_ids = [o.id for o in existing if o.starts_at >= now]
                if future_ids:
                    await session.execute(delete(RoomOccupancy).where(RoomOccupancy.occurrence_id.in_(future_ids)))
                for stale in upcoming.values():
                    await session.delete(stale)
                await session.flush()
                records.occupy(session, booking_id, [room.id for room in rooms], live)
                records.apply(booking, draft, zone, now)
                await session.execute(delete(BookingRoom).where(BookingRoom.booking_id == booking_id))
                session.add_all(
                    BookingRoom(booking_id=booking_id, room_id=room.id, is_host=index == 0)
                    for index, room in enumerate(rooms)
                )
                await session.flush()
                audit.record(
                    session,
                    at=now,
                    actor=principal.actor,
                    action="booking.update",
                    target=f"booking:{booking_id}",
                    details={"changed": sorted(changes), **records.summary(draft, len(slots))},
                    address=address,
                )
                return await records.detail(session, booking_id)

        return await self._raced(attempt, lambda: room_ids, lambda: slots, ignore_booking=booking_id)

    async def move_occurrence(
        self,
        principal: Principal,
        booking_id: int,
        occurrence_id: int,
        starts_at: datetime,
        ends_at: datetime,
        address: str | None = None,
    ) -> BookingDetail:
        """Move one occurrence (conflict-checked); later series edits keep its new times."""
        now = self._clock.now()
        try:
            check_duration(starts_at, ends_at)
        except PolicyError as exc:
            raise Invalid(exc.args[0]) from exc
        slot = Slot(starts_at, starts_at, ends_at)
        room_ids: tuple[int, ...] = ()

        async def attempt() -> BookingDetail:
            nonlocal room_ids, slot
            async with self._writing() as session:
                booking, rooms = await self._modifiable(session, principal, booking_id)
                occurrence = await self._occurrence(session, booking_id, occurrence_id)
                if occurrence.starts_at < now:
                    raise Conflict(Text("started_no_move"))
                slot = Slot(occurrence.recurrence_id, starts_at, ends_at)
                room_ids = tuple(room.id for room in rooms)
                zones = await records.zones_of(session, rooms)
                records.check_policies(rooms, [slot], now, booking.attendees, zones)
                await records.refuse_clash(session, room_ids, [slot], ignore_occurrence=occurrence_id)
                before = (occurrence.starts_at, occurrence.ends_at)
                occurrence.starts_at, occurrence.ends_at, occurrence.detached = starts_at, ends_at, True
                await session.execute(
                    update(RoomOccupancy)
                    .where(RoomOccupancy.occurrence_id == occurrence_id)
                    .values(starts_at=starts_at, ends_at=ends_at)
                )
                booking.updated_at = now
                audit.record(
                    session,
                    at=now,
                    actor=principal.actor,
                    action="booking.occurrence.move",
                    target=f"booking:{booking_id}",
                    details={
                        "occurrence_id": occurrence_id,
                        "from": [t.isoformat() for t in before],
                        "to": [starts_at.isoformat(), ends_at.isoformat()],
                    },
                    address=address,
                )
                await session.flush()
                return await records.detail(session, booking_id)

        return await self._raced(attempt, lambda: room_ids, lambda: [slot], ignore_occurrence=occurrence_id)

    async def cancel_occurrence(
        self, principal: Principal, booking_id: int, occurrence_id: int, address: str | None = None
    ) -> BookingDetail:
        now = self._clock.now()
        async with self._writing() as session:
            await self._modifiable(session, principal, booking_id)
            occurrence = await self._occurrence(session, booking_id, occurrence_id)
            if occurrence.starts_at < now:
                raise Conflict(Text("started_no_cancel"))
            occurrence.cancelled = True
            await session.execute(delete(RoomOccupancy).where(RoomOccupancy.occurrence_id == occurrence_id))
            audit.record(
                session,
                at=now,
                actor=principal.actor,
                action="booking.occurrence.cancel",
                target=f"booking:{booking_id}",
                details={"occurrence_id": occurrence_id},
                address=address,
            )
            await session.flush()
            return await records.detail(session, booking_id)

    async def cancel_series(self, principal: Principal, booking_id: int, address: str | None = None) -> BookingDetail:
        """Cancel the booking: its occurrences from now on are cancelled and free their rooms."""
        now = self._clock.now()
        async with self._writing() as session:
            booking, _rooms = await self._modifiable(session, principal, booking_id)
            upcoming = select(Occurrence.id).where(Occurrence.booking_id == booking_id, Occurrence.starts_at >= now)
            await session.execute(delete(RoomOccupancy).where(RoomOccupancy.occurrence_id.in_(upcoming)))
            await session.execute(
                update(Occurrence)
                .where(Occurrence.booking_id == booking_id, Occurrence.starts_at >= now)
                .values(cancelled=True)
            )
            booking.cancelled_at = now
            booking.updated_at = now
            audit.record(
                session,
                at=now,
                actor=principal.actor,
                action="booking.cancel",
                target=f"booking:{booking_id}",
                details={"title": booking.title},
                address=address,
            )
            await session.flush()
            return await records.detail(session, booking_id)

    async def occurrences(self, room_ids: Sequence[int], start: datetime, end: datetime) -> list[Listed]:
        """Live occurrences using any of the rooms and overlapping [start, end), by start."""
        if end <= start:
            raise Invalid(Text("to_after_from"))
        if end - start > MAX_LIST_SPAN:
            raise Invalid(Text("list_span", days=MAX_LIST_SPAN.days))
        query = (
            select(Room, Occurrence, Booking)
            .join(RoomOccupancy, RoomOccupancy.room_id == Room.id)
            .join(Occurrence, Occurrence.id == RoomOccupancy.occurrence_id)
            .join(Booking, Booking.id == RoomOccupancy.booking_id)
            .where(
                RoomOccupancy.room_id.in_(list(room_ids)),
                RoomOccupancy.starts_at >= start - MAX_DURATION,
                RoomOccupancy.starts_at < end,
                RoomOccupancy.ends_at > start,
            )
            .order_by(RoomOccupancy.starts_at, Room.id)
        )
        async with self._db() as session:
            rows = (await session.execute(query)).all()
        return [Listed(room, occurrence, booking) for room, occurrence, booking in rows]

    async def availability(
        self,
        principal: Principal,
        room_ids: Sequence[int],
        first_day: date,
        days: int,
        hours: availability.Hours,
        min_length: timedelta,
    ) -> tuple[ZoneInfo, list[availability.Interval]]:
        """Free slots common to every room, in the first room's unit time zone."""
        async with self._db() as session:
            rooms, zones = await self._visible_rooms(session, principal, room_ids)
            zone = zones[rooms[0].unit_id]
            working = availability.windows(first_day, days, hours, zone)
            if not working:
                return zone, []
            taken = await availability.busy(session, room_ids, working[0][0], working[-1][1])
        return zone, availability.free(working, taken, min_length)

    # ----- helpers needing the service's state -----

    async def _raced(
        self,
        attempt: Callable[[], Awaitable[BookingDetail]],
        room_ids: Callable[[], Sequence[int]],
        slots: Callable[[], Sequence[Slot]],
        *,
        ignore_booking: int | None = None,
        ignore_occurrence: int | None = None,
    ) -> BookingDetail:
        """Run `attempt`; a PostgreSQL exclusion violation (lost race) becomes a 409 naming the winner."""
        try:
            return await attempt()
        except IntegrityError as exc:
            if not _is_overlap(exc):
                raise
            async with self._db() as session:
                clash = await find_clash(
                    session, room_ids(), slots(), ignore_booking=ignore_booking, ignore_occurrence=ignore_occurrence
                )
            if clash is None:
                raise Conflict(Text("booked_moment_ago")) from exc
            raise Conflict(clash.message()) from exc

    async def _bookable_rooms(
        self,
        session: AsyncSession,
        principal: Principal,
        room_ids: Sequence[int],
        already: Sequence[Room],
    ) -> tuple[list[Room], dict[int, ZoneInfo]]:
        """The rooms in the order asked (host first) with their units' zones; 422 unknown, 403 not bookable.

        Rooms the booking holds already (`already`) stay allowed for whoever may edit it.
        """
        if len(set(room_ids)) != len(room_ids):
            raise Invalid(Text("room_twice"))
        rows = (await session.execute(inserts.ROOMS_WITH_ZONES, {"room_ids": list(room_ids)})).all()
        return await self._checked_rooms(session, principal, room_ids, already, [(room, zone) for room, zone in rows])

    async def _checked_rooms(
        self,
        session: AsyncSession,
        principal: Principal,
        room_ids: Sequence[int],
        already: Sequence[Room],
        rows: Sequence[tuple[Room, str]],
    ) -> tuple[list[Room], dict[int, ZoneInfo]]:
        found = {room.id: room for room, _zone in rows}
        zones = {room.unit_id: ZoneInfo(zone) for room, zone in rows}
        missing = [str(room_id) for room_id in room_ids if room_id not in found]
        if missing:
            raise Invalid(Text("no_such_rooms", rooms=", ".join(missing)))
        rooms = [found[room_id] for room_id in room_ids]
        held = {room.id for room in already}
        tree = await parents(session) if principal.role is Role.DISTRICT_TECHNICIAN else {}
        for room in rooms:
            if room.id not in held and not may_book(principal, tree, room.unit_id):
                raise Forbidden(Text("may_not_book_room", room=room.name, id=room.id))
        return rooms, zones

    async def _visible_rooms(
        self, session: AsyncSession, principal: Principal, room_ids: Sequence[int]
    ) -> tuple[list[Room], dict[int, ZoneInfo]]:
        return await self._bookable_rooms(session, principal, room_ids, ())

    async def _modifiable(
        self, session: AsyncSession, principal: Principal, booking_id: int
    ) -> tuple[Booking, list[Room]]:
        booking = await session.get(Booking, booking_id)
        if booking is None:
            raise NotFound(Text("no_such_booking"))
        rooms = await records.rooms_of_booking(session, booking_id)
        if booking.cancelled_at is not None:
            raise Conflict(Text("booking_cancelled"))
        if principal.role in (Role.ADMIN, Role.DEPARTMENT_BOOKER) or principal.user_id == booking.organizer_id:
            return booking, rooms
        if principal.role in (Role.SCHOOL_STAFF, Role.DISTRICT_TECHNICIAN):
            tree = await parents(session) if principal.role is Role.DISTRICT_TECHNICIAN else {}
            if may_book(principal, tree, rooms[0].unit_id):
                return booking, rooms
        raise Forbidden(Text("may_not_change_booking"))

    async def _occurrence(self, session: AsyncSession, booking_id: int, occurrence_id: int) -> Occurrence:
        occurrence = await session.get(Occurrence, occurrence_id)
        if occurrence is None or occurrence.booking_id != booking_id:
            raise NotFound(Text("no_such_occurrence"))
        if occurrence.cancelled:
            raise Conflict(Text("occurrence_cancelled"))
        return occurrence
