"""SQLite: a new booking as one job of the writer thread (controller.db.sqlite_writer), checks included.

The job runs inside the writer's write transaction (BEGIN IMMEDIATE), so the conflict check and the inserts see
and hold the same state: of two clashing creates, in this process or another, exactly one wins. In order, as
the SQLAlchemy path does it: the rooms with their units' zones and whether any is taken at the first slot (one
statement), who may book them, the recurrence, the rooms' policies, the clash (looked up only when a room is
taken, or for a series), then one insert each for the booking, its rooms, occurrences, occupancy and audit entry.

Values are written as SQLAlchemy writes them on SQLite (controller.db.types.UTCDateTime: naive UTC as
'YYYY-MM-DD HH:MM:SS.ffffff'; JSON as json.dumps; booleans as 0/1; enums as their values), so the ORM reads
these rows like its own, and the string comparisons of the time columns order them as times.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from controller.bookings import records
from controller.bookings.conflicts import MAX_DURATION, Clash
from controller.bookings.drafts import BookingDetail, BookingDraft, Conflict, Forbidden, Invalid
from controller.bookings.messages import Text
from controller.bookings.models import BandwidthClass, Room
from controller.bookings.policies import may_book
from controller.bookings.recurrence import Slot
from controller.db.models import Role
from controller.security.sessions import Principal

_CHUNK = 100


@dataclass(frozen=True)
class CreateRequest:
    principal: Principal
    draft: BookingDraft
    now: datetime
    address: str | None


def stamp(moment: datetime) -> str:
    """An aware datetime as SQLAlchemy stores it on SQLite (naive UTC, microseconds always)."""
    m = moment.astimezone(UTC)
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d} {m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}"


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


@functools.lru_cache(maxsize=64)
def _marks(count: int) -> str:
    return ",".join("?" * count)


@functools.lru_cache(maxsize=64)
def _rooms_probing(count: int) -> str:
    return f"""
SELECT r.id, r.unit_id, r.name, r.capacity, r.equipment, r.bandwidth_class, r.booking_window_days,
       r.max_duration_minutes, r.active, r.created_at, r.updated_at, u.time_zone,
       EXISTS (SELECT 1 FROM room_occupancy o
               WHERE o.room_id = r.id AND o.starts_at >= ? AND o.starts_at < ? AND o.ends_at > ?)
FROM rooms r JOIN units u ON u.id = r.unit_id
WHERE r.id IN ({_marks(count)})"""  # noqa: S608 (only placeholders are formatted in)


@functools.lru_cache(maxsize=256)
def _clash(rooms: int, slots: int) -> str:
    windows = " OR ".join(["(o.starts_at >= ? AND o.starts_at < ? AND o.ends_at > ?)"] * slots)
    return f"""
SELECT o.starts_at, o.room_id, o.booking_id FROM room_occupancy o
WHERE o.room_id IN ({_marks(rooms)}) AND ({windows})
ORDER BY o.starts_at LIMIT 1"""  # noqa: S608 (only placeholders are formatted in)


_DESCRIBE = """
SELECT r.name, u.time_zone, b.title, o.starts_at, o.ends_at
FROM room_occupancy o JOIN rooms r ON r.id = o.room_id JOIN units u ON u.id = r.unit_id
JOIN bookings b ON b.id = o.booking_id
WHERE o.room_id = ? AND o.booking_id = ? AND o.starts_at = ?"""
_UNITS = "SELECT id, parent_id FROM units"
_INSERT_BOOKING = """
INSERT INTO bookings (title, agenda, mode, organizer_id, host_room_id, starts_at, ends_at, time_zone, rrule,
                      exdates, attendees, cancelled_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)"""
_INSERT_ROOM = "INSERT INTO booking_rooms (booking_id, room_id, is_host) VALUES (?, ?, ?)"
_INSERT_OCCURRENCE = """
INSERT INTO occurrences (booking_id, recurrence_id, starts_at, ends_at, cancelled, detached)
VALUES (?, ?, ?, ?, 0, 0)"""
_OCCURRENCE_IDS = "SELECT recurrence_id, id FROM occurrences WHERE booking_id = ?"
_INSERT_OCCUPANCY = """
INSERT INTO room_occupancy (room_id, occurrence_id, booking_id, starts_at, ends_at) VALUES (?, ?, ?, ?, ?)"""
_INSERT_AUDIT = """
INSERT INTO audit_log (at, actor, action, target, details, address) VALUES (?, ?, 'booking.create', ?, ?, ?)"""


def warm(connection: sqlite3.Connection) -> None:
    """Prepare the rooms probe (one room: the usual request) in the connection's statement cache."""
    never = stamp(datetime(1970, 1, 1, tzinfo=UTC))
    connection.execute(_rooms_probing(1), (never, never, never, 0)).fetchall()


def create(request: CreateRequest, connection: sqlite3.Connection) -> BookingDetail:
    """Check and write the booking in the caller's transaction; a refusal raises a BookingError."""
    draft = request.draft
    room_ids = draft.room_ids
    if len(set(room_ids)) != len(room_ids):
        raise Invalid(Text("room_twice"))
    rooms, zones, taken = _rooms(connection, request.principal, draft)
    slots = records.expand_draft(draft, zones[rooms[0].unit_id])
    records.check_policies(rooms, slots, request.now, draft.attendees, zones)
    if taken or len(slots) > 1:
        clash = _find_clash(connection, room_ids, slots)
        if clash is not None:
            raise Conflict(clash.message())
    return _insert(connection, request, rooms, zones, slots)


def _rooms(
    connection: sqlite3.Connection, principal: Principal, draft: BookingDraft
) -> tuple[list[Room], dict[int, ZoneInfo], bool]:
    """The rooms in the order asked (host first), their units' zones, and whether one is taken at the first
    slot; 422 for unknown rooms, 403 for rooms the principal may not book."""
    room_ids = draft.room_ids
    start = stamp(draft.starts_at)
    parameters = (stamp(draft.starts_at - MAX_DURATION), stamp(draft.ends_at), start, *room_ids)
    found: dict[int, Room] = {}
    zones: dict[int, ZoneInfo] = {}
    taken = False
    for row in connection.execute(_rooms_probing(len(room_ids)), parameters):
        room = Room(
            id=row[0],
            unit_id=row[1],
            name=row[2],
            capacity=row[3],
            equipment=json.loads(row[4]),
            bandwidth_class=BandwidthClass(row[5]),
            booking_window_days=row[6],
            max_duration_minutes=row[7],
            active=bool(row[8]),
            created_at=_moment(row[9]),
            updated_at=_moment(row[10]),
        )
        found[room.id] = room
        zones[room.unit_id] = _zone(row[11])
        taken = taken or bool(row[12])
    missing = [str(room_id) for room_id in room_ids if room_id not in found]
    if missing:
        raise Invalid(Text("no_such_rooms", rooms=", ".join(missing)))
    rooms = [found[room_id] for room_id in room_ids]
    tree: dict[int, int | None] = {}
    if principal.role is Role.DISTRICT_TECHNICIAN:
        tree = dict(connection.execute(_UNITS).fetchall())
    for room in rooms:
        if not may_book(principal, tree, room.unit_id):
            raise Forbidden(Text("may_not_book_room", room=room.name, id=room.id))
    return rooms, zones, taken


@functools.lru_cache(maxsize=64)
def _zone(key: str) -> ZoneInfo:
    return ZoneInfo(key)


def _find_clash(connection: sqlite3.Connection, room_ids: Sequence[int], slots: Sequence[Slot]) -> Clash | None:
    """The earliest clash of `slots` with what the rooms hold (as controller.bookings.conflicts.find_clash)."""
    best: tuple[str, int, int] | None = None
    for offset in range(0, len(slots), _CHUNK):
        chunk = slots[offset : offset + _CHUNK]
        windows: list[Any] = []
        for slot in chunk:
            windows += (stamp(slot.starts_at - MAX_DURATION), stamp(slot.ends_at), stamp(slot.starts_at))
        row = connection.execute(_clash(len(room_ids), len(chunk)), (*room_ids, *windows)).fetchone()
        if row is not None and (best is None or row[0] < best[0]):
            best = (row[0], row[1], row[2])
    if best is None:
        return None
    name, zone, title, starts_at, ends_at = connection.execute(_DESCRIBE, (best[1], best[2], best[0])).fetchone()
    return Clash(best[1], name, zone, best[2], title, _moment(starts_at), _moment(ends_at))


def _insert(
    connection: sqlite3.Connection,
    request: CreateRequest,
    rooms: Sequence[Room],
    zones: dict[int, ZoneInfo],
    slots: Sequence[Slot],
) -> BookingDetail:
    draft, now = request.draft, request.now
    values = records.new_booking_values(draft, request.principal.user_id, zones[rooms[0].unit_id], now)
    written = stamp(now)
    booking_id = connection.execute(
        _INSERT_BOOKING,
        (
            draft.title,
            draft.agenda,
            draft.mode.value,
            request.principal.user_id,
            draft.host_room_id,
            stamp(draft.starts_at),
            stamp(draft.ends_at),
            values["time_zone"],
            values["rrule"],
            json.dumps(values["exdates"]),
            draft.attendees,
            written,
            written,
        ),
    ).lastrowid
    assert booking_id is not None
    connection.executemany(
        _INSERT_ROOM, [(booking_id, room.id, 1 if index == 0 else 0) for index, room in enumerate(rooms)]
    )
    stamped = [(stamp(slot.recurrence_id), stamp(slot.starts_at), stamp(slot.ends_at)) for slot in slots]
    if len(slots) == 1:
        occurrence_id = connection.execute(_INSERT_OCCURRENCE, (booking_id, *stamped[0])).lastrowid
        assert occurrence_id is not None
        ids = [occurrence_id]
    else:
        connection.executemany(_INSERT_OCCURRENCE, [(booking_id, *row) for row in stamped])
        by_recurrence = dict(connection.execute(_OCCURRENCE_IDS, (booking_id,)).fetchall())
        ids = [by_recurrence[row[0]] for row in stamped]
    connection.executemany(
        _INSERT_OCCUPANCY,
        [
            (room.id, occurrence_id, booking_id, starts, ends)
            for occurrence_id, (_recurrence, starts, ends) in zip(ids, stamped, strict=True)
            for room in rooms
        ],
    )
    details = json.dumps(records.summary(draft, len(slots)))
    connection.execute(
        _INSERT_AUDIT, (written, request.principal.actor, f"booking:{booking_id}", details, request.address)
    )
    return records.new_booking_detail(booking_id, values, rooms, zones, slots, ids)
