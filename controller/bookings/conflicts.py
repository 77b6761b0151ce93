"""Conflict checks: does any room of a set hold an occupancy overlapping any of the given slots?

Reads `room_occupancy` (one row per room per live occurrence). Bookings last at most `MAX_DURATION`, so the
search for a slot [s, e) is the index range starts_at in [s - MAX_DURATION, e) per room, then ends_at > s.
Intervals are half-open: a booking ending at 09:00 does not clash with one starting at 09:00.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.bookings.messages import Text
from controller.bookings.models import Booking, Room, RoomOccupancy
from controller.bookings.recurrence import Slot
from controller.db.models import Unit

MAX_DURATION = timedelta(hours=12)
_CHUNK = 100
_ONE_SLOT = (
    select(RoomOccupancy.starts_at, RoomOccupancy.room_id, RoomOccupancy.booking_id)
    .where(
        RoomOccupancy.room_id.in_(bindparam("room_ids", expanding=True)),
        RoomOccupancy.starts_at >= bindparam("earliest"),
        RoomOccupancy.starts_at < bindparam("end"),
        RoomOccupancy.ends_at > bindparam("start"),
    )
    .order_by(RoomOccupancy.starts_at)
    .limit(1)
)
"""The common case (one new occurrence, nothing ignored), built once: building it per call cost more than
running it."""


@dataclass(frozen=True)
class Clash:
    room_id: int
    room_name: str
    time_zone: str
    booking_id: int
    title: str
    starts_at: datetime
    ends_at: datetime

    def message(self) -> str:
        """What the caller sees: the room and the clashing booking, in the room's time zone."""
        zone = ZoneInfo(self.time_zone)
        start = self.starts_at.astimezone(zone)
        end = self.ends_at.astimezone(zone)
        return Text(
            "clash",
            room=self.room_name,
            title=self.title,
            booking=self.booking_id,
            day=f"{start:%Y-%m-%d}",
            start=f"{start:%H:%M}",
            end=f"{end:%H:%M}",
            zone=self.time_zone,
        )


async def find_clash(
    session: AsyncSession,
    room_ids: Collection[int],
    slots: Sequence[Slot],
    *,
    ignore_booking: int | None = None,
    ignore_occurrence: int | None = None,
) -> Clash | None:
    """The earliest clash of `slots` with what the rooms already hold, or None.

    `ignore_booking` (`ignore_occurrence`) leaves out one booking's (occurrence's) own occupancy, when it is
    being edited.
    """
    if not room_ids or not slots:
        return None
    best: tuple[datetime, int, int] | None = None
    if len(slots) == 1 and ignore_booking is None and ignore_occurrence is None:
        slot = slots[0]
        parameters = {
            "room_ids": list(room_ids),
            "earliest": slot.starts_at - MAX_DURATION,
            "end": slot.ends_at,
            "start": slot.starts_at,
        }
        row = (await session.execute(_ONE_SLOT, parameters)).first()
        return None if row is None else await _describe(session, row[1], row[2], row[0])
    for offset in range(0, len(slots), _CHUNK):
        chunk = slots[offset : offset + _CHUNK]
        windows = [
            and_(
                RoomOccupancy.starts_at >= slot.starts_at - MAX_DURATION,
                RoomOccupancy.starts_at < slot.ends_at,
                RoomOccupancy.ends_at > slot.starts_at,
            )
            for slot in chunk
        ]
        query = (
            select(RoomOccupancy.starts_at, RoomOccupancy.room_id, RoomOccupancy.booking_id)
            .where(RoomOccupancy.room_id.in_(list(room_ids)), or_(*windows))
            .order_by(RoomOccupancy.starts_at)
            .limit(1)
        )
        if ignore_booking is not None:
            query = query.where(RoomOccupancy.booking_id != ignore_booking)
        if ignore_occurrence is not None:
            query = query.where(RoomOccupancy.occurrence_id != ignore_occurrence)
        row = (await session.execute(query)).first()
        if row is not None and (best is None or row[0] < best[0]):
            best = (row[0], row[1], row[2])
    if best is None:
        return None
    return await _describe(session, best[1], best[2], best[0])


def self_overlap(slots: Sequence[Slot]) -> tuple[Slot, Slot] | None:
    """Two of the booking's own occurrences that overlap each other (after an edit), or None."""
    ordered = sorted(slots, key=lambda slot: slot.starts_at)
    for before, after in itertools.pairwise(ordered):
        if after.starts_at < before.ends_at:
            return before, after
    return None


_DESCRIBE = (
    select(Room.name, Unit.time_zone, Booking.title, RoomOccupancy.starts_at, RoomOccupancy.ends_at)
    .join(Unit, Unit.id == Room.unit_id)
    .join(RoomOccupancy, RoomOccupancy.room_id == Room.id)
    .join(Booking, Booking.id == RoomOccupancy.booking_id)
    .where(
        Room.id == bindparam("room_id"),
        RoomOccupancy.booking_id == bindparam("booking_id"),
        RoomOccupancy.starts_at == bindparam("starts_at"),
    )
)
"""Built once, as `_ONE_SLOT` (every refused create runs it for its message)."""


async def _describe(session: AsyncSession, room_id: int, booking_id: int, starts_at: datetime) -> Clash:
    parameters = {"room_id": room_id, "booking_id": booking_id, "starts_at": starts_at}
    name, zone, title, start, end = (await session.execute(_DESCRIBE, parameters)).one()
    return Clash(room_id, name, zone, booking_id, title, start, end)
