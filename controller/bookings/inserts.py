"""The write path of a new booking: a few prepared Core statements on the service's transaction.

Creating a booking is the hot path (every booking, and on SQLite every other writer waits for it), so the
statements are built once at import, with bound parameters, rather than per request: building an ORM statement
and its cache key cost more than running it. The booking, its rooms, its occurrences, their room occupancy and
the audit entry are one insert each (several rows go as one executemany), and nothing is read back after the
insert: the answer is made from the values written and the ids the inserts returned.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from controller.bookings import records
from controller.bookings.conflicts import MAX_DURATION
from controller.bookings.drafts import BookingDetail, BookingDraft
from controller.bookings.models import Booking, BookingRoom, Occurrence, Room, RoomOccupancy
from controller.bookings.recurrence import Slot
from controller.db.models import AuditEntry, Base, Unit

logger = logging.getLogger(__name__)

ROOMS_WITH_ZONES = (
    select(Room, Unit.time_zone)
    .join(Unit, Unit.id == Room.unit_id)
    .where(Room.id.in_(bindparam("room_ids", expanding=True)))
)
"""The rooms named by a request with their units' time zones (`room_ids`: a list)."""

_TAKEN = (
    select(RoomOccupancy.id)
    .where(
        RoomOccupancy.room_id == Room.id,
        RoomOccupancy.starts_at >= bindparam("earliest"),
        RoomOccupancy.starts_at < bindparam("end"),
        RoomOccupancy.ends_at > bindparam("start"),
    )
    .exists()
)
_ROOMS_PROBING = (
    select(Room, Unit.time_zone, _TAKEN.label("taken"))
    .join(Unit, Unit.id == Room.unit_id)
    .where(Room.id.in_(bindparam("room_ids", expanding=True)))
)


async def rooms_probing(
    session: AsyncSession, room_ids: Sequence[int], starts_at: datetime, ends_at: datetime
) -> tuple[list[tuple[Room, str]], bool]:
    """The rooms with their units' zones, and whether any of them is taken in [starts_at, ends_at)."""
    parameters = {
        "room_ids": list(room_ids),
        "earliest": starts_at - MAX_DURATION,
        "end": ends_at,
        "start": starts_at,
    }
    rows = (await session.execute(_ROOMS_PROBING, parameters)).all()
    return [(room, zone) for room, zone, _taken in rows], any(taken for _room, _zone, taken in rows)


_TABLES = Base.metadata.tables
_BOOKINGS = _TABLES[Booking.__tablename__]
_OCCURRENCES = _TABLES[Occurrence.__tablename__]
_INSERT_BOOKING = insert(_BOOKINGS).returning(_BOOKINGS.c.id)
_INSERT_ROOMS = insert(_TABLES[BookingRoom.__tablename__])
_INSERT_OCCURRENCE = insert(_OCCURRENCES).returning(_OCCURRENCES.c.id)
_INSERT_OCCURRENCES = insert(_OCCURRENCES).returning(_OCCURRENCES.c.id, sort_by_parameter_order=True)
_INSERT_OCCUPANCY = insert(_TABLES[RoomOccupancy.__tablename__])
_INSERT_AUDIT = insert(_TABLES[AuditEntry.__tablename__])


async def insert_booking(
    session: AsyncSession,
    *,
    organizer_id: int,
    actor: str,
    draft: BookingDraft,
    rooms: Sequence[Room],
    zones: dict[int, ZoneInfo],
    slots: Sequence[Slot],
    now: datetime,
    address: str | None,
) -> BookingDetail:
    """Write a checked booking (rooms in order, host first; `slots` its occurrences) and its audit entry."""
    values = records.new_booking_values(draft, organizer_id, zones[rooms[0].unit_id], now)
    booking_id: int = (await session.execute(_INSERT_BOOKING, values)).scalar_one()
    await session.execute(
        _INSERT_ROOMS,
        [{"booking_id": booking_id, "room_id": room.id, "is_host": index == 0} for index, room in enumerate(rooms)],
    )
    rows = [
        {
            "booking_id": booking_id,
            "recurrence_id": slot.recurrence_id,
            "starts_at": slot.starts_at,
            "ends_at": slot.ends_at,
            "cancelled": False,
            "detached": False,
        }
        for slot in slots
    ]
    if len(rows) == 1:
        ids = [(await session.execute(_INSERT_OCCURRENCE, rows[0])).scalar_one()]
    else:
        ids = list((await session.execute(_INSERT_OCCURRENCES, rows)).scalars())
    occurrences = [Occurrence(id=occurrence_id, **row) for occurrence_id, row in zip(ids, rows, strict=True)]
    await session.execute(
        _INSERT_OCCUPANCY,
        [
            {
                "room_id": room.id,
                "occurrence_id": occurrence.id,
                "booking_id": booking_id,
                "starts_at": occurrence.starts_at,
                "ends_at": occurrence.ends_at,
            }
            for occurrence in occurrences
            for room in rooms
        ],
    )
    await session.execute(
        _INSERT_AUDIT,
        {
            "at": now,
            "actor": actor,
            "action": "booking.create",
            "target": f"booking:{booking_id}",
            "details": records.summary(draft, len(slots)),
            "address": address,
        },
    )
    logger.info("audit: %s booking.create booking:%s", actor, booking_id)
    booking = Booking(id=booking_id, **values)
    return BookingDetail(booking, list(rooms), occurrences, {unit: zone.key for unit, zone in zones.items()})


_INSERT_ALL_PG = text(
    """
WITH b AS (
    INSERT INTO bookings (title, agenda, mode, organizer_id, host_room_id, starts_at, ends_at, time_zone, rrule,
                          exdates, attendees, cancelled_at, created_at, updated_at)
    VALUES (:title, :agenda, :mode, :organizer_id, :host_room_id, :starts_at, :ends_at, :time_zone, :rrule,
            CAST(:exdates AS json), :attendees, NULL, :now, :now)
    RETURNING id
), r AS (
    INSERT INTO booking_rooms (booking_id, room_id, is_host)
    SELECT b.id, x.room_id, x.ordinal = 1
    FROM b, unnest(CAST(:room_ids AS integer[])) WITH ORDINALITY AS x(room_id, ordinal)
), o AS (
    INSERT INTO occurrences (booking_id, recurrence_id, starts_at, ends_at, cancelled, detached)
    SELECT b.id, x.recurrence_id, x.starts_at, x.ends_at, false, false
    FROM b, unnest(CAST(:recurrence_ids AS timestamptz[]), CAST(:starts AS timestamptz[]),
                   CAST(:ends AS timestamptz[])) AS x(recurrence_id, starts_at, ends_at)
    RETURNING id, booking_id, recurrence_id, starts_at, ends_at
), occ AS (
    INSERT INTO room_occupancy (room_id, occurrence_id, booking_id, starts_at, ends_at)
    SELECT room_id, o.id, o.booking_id, o.starts_at, o.ends_at
    FROM o, unnest(CAST(:room_ids AS integer[])) AS room_id
), a AS (
    INSERT INTO audit_log (at, actor, action, target, details, address)
    SELECT :now, :actor, 'booking.create', 'booking:' || b.id, CAST(:details AS json), :address FROM b
)
SELECT o.booking_id, o.id, o.recurrence_id FROM o
"""
)
"""PostgreSQL: the whole booking in one statement (one round trip instead of five); it is atomic on its own, and
the exclusion constraint on room_occupancy refuses it whole when a room is taken (23P01)."""


async def insert_booking_pg(
    session: AsyncSession,
    *,
    organizer_id: int,
    actor: str,
    draft: BookingDraft,
    rooms: Sequence[Room],
    zones: dict[int, ZoneInfo],
    slots: Sequence[Slot],
    now: datetime,
    address: str | None,
) -> BookingDetail:
    """As `insert_booking`, on PostgreSQL, in one statement."""
    values = records.new_booking_values(draft, organizer_id, zones[rooms[0].unit_id], now)
    parameters = {
        **{key: value for key, value in values.items() if key not in ("cancelled_at", "created_at", "updated_at")},
        "mode": draft.mode.value,
        "exdates": json.dumps(values["exdates"]),
        "now": now,
        "room_ids": [room.id for room in rooms],
        "recurrence_ids": [slot.recurrence_id for slot in slots],
        "starts": [slot.starts_at for slot in slots],
        "ends": [slot.ends_at for slot in slots],
        "actor": actor,
        "details": json.dumps(records.summary(draft, len(slots))),
        "address": address,
    }
    rows = (await session.execute(_INSERT_ALL_PG, parameters)).all()
    booking_id = int(rows[0][0])
    ids = {recurrence_id: occurrence_id for _, occurrence_id, recurrence_id in rows}
    logger.info("audit: %s booking.create booking:%s", actor, booking_id)
    occurrence_ids = [ids[slot.recurrence_id] for slot in slots]
    return records.new_booking_detail(booking_id, values, rooms, zones, slots, occurrence_ids)
