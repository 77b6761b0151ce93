"""Reading and writing bookings' rows for the service: the detail of a booking, its rooms and zones, occupancy,
the draft of a stored booking, and the checks that turn policy and recurrence errors into `Invalid`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.bookings.conflicts import Clash, find_clash
from controller.bookings.drafts import BookingDetail, BookingDraft, Conflict, Invalid, NotFound
from controller.bookings.messages import Text
from controller.bookings.models import Booking, BookingRoom, Occurrence, Room, RoomOccupancy
from controller.bookings.policies import PolicyError, check_duration, check_rooms
from controller.bookings.recurrence import RecurrenceError, Slot, expand, parse_rule
from controller.db.models import Unit


def jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return list(value)
    return value


def normalised_rule(rule: str | None) -> str | None:
    return None if rule is None else parse_rule(rule).text()


def new_booking_values(draft: BookingDraft, organizer_id: int, zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    """The columns of a new booking row (`zone`: its host room's), as every create path writes them."""
    return {
        "title": draft.title,
        "agenda": draft.agenda,
        "mode": draft.mode,
        "organizer_id": organizer_id,
        "host_room_id": draft.host_room_id,
        "starts_at": draft.starts_at,
        "ends_at": draft.ends_at,
        "time_zone": zone.key,
        "rrule": normalised_rule(draft.rule),
        "exdates": sorted(day.isoformat() for day in draft.exdates),
        "attendees": draft.attendees,
        "cancelled_at": None,
        "created_at": now,
        "updated_at": now,
    }


def new_booking_detail(
    booking_id: int,
    values: dict[str, Any],
    rooms: Sequence[Room],
    zones: dict[int, ZoneInfo],
    slots: Sequence[Slot],
    occurrence_ids: Sequence[int],
) -> BookingDetail:
    """The detail of a booking just written (`values`: `new_booking_values`; `occurrence_ids` in `slots`' order)."""
    occurrences = [
        Occurrence(
            id=occurrence_id,
            booking_id=booking_id,
            recurrence_id=slot.recurrence_id,
            starts_at=slot.starts_at,
            ends_at=slot.ends_at,
            cancelled=False,
            detached=False,
        )
        for occurrence_id, slot in zip(occurrence_ids, slots, strict=True)
    ]
    booking = Booking(id=booking_id, **values)
    return BookingDetail(booking, list(rooms), occurrences, {unit: zone.key for unit, zone in zones.items()})


def expand_draft(draft: BookingDraft, zone: ZoneInfo) -> list[Slot]:
    try:
        check_duration(draft.starts_at, draft.ends_at)
        rule = None if draft.rule is None else parse_rule(draft.rule)
        return expand(draft.starts_at, draft.ends_at, zone, rule, frozenset(draft.exdates))
    except (PolicyError, RecurrenceError) as exc:
        raise Invalid(exc.args[0]) from exc


def check_policies(
    rooms: Sequence[Room], slots: Sequence[Slot], now: datetime, attendees: int | None, zones: dict[int, ZoneInfo]
) -> None:
    try:
        check_rooms(rooms, slots, now=now, attendees=attendees, zones=zones)
    except PolicyError as exc:
        raise Invalid(exc.args[0]) from exc


async def refuse_clash(
    session: AsyncSession,
    room_ids: Sequence[int],
    slots: Sequence[Slot],
    *,
    ignore_booking: int | None = None,
    ignore_occurrence: int | None = None,
) -> None:
    clash: Clash | None = await find_clash(
        session, room_ids, slots, ignore_booking=ignore_booking, ignore_occurrence=ignore_occurrence
    )
    if clash is not None:
        raise Conflict(clash.message())


def occupy(session: AsyncSession, booking_id: int, room_ids: Sequence[int], occurrences: Sequence[Occurrence]) -> None:
    session.add_all(
        RoomOccupancy(
            room_id=room_id,
            occurrence_id=occurrence.id,
            booking_id=booking_id,
            starts_at=occurrence.starts_at,
            ends_at=occurrence.ends_at,
        )
        for occurrence in occurrences
        if not occurrence.cancelled
        for room_id in room_ids
    )


async def zones_of(session: AsyncSession, rooms: Sequence[Room]) -> dict[int, ZoneInfo]:
    unit_ids = {room.unit_id for room in rooms}
    rows = await session.execute(select(Unit.id, Unit.time_zone).where(Unit.id.in_(unit_ids)))
    return {unit_id: ZoneInfo(zone) for unit_id, zone in rows.all()}


async def rooms_of_booking(session: AsyncSession, booking_id: int) -> list[Room]:
    query = (
        select(Room)
        .join(BookingRoom, BookingRoom.room_id == Room.id)
        .where(BookingRoom.booking_id == booking_id)
        .order_by(BookingRoom.is_host.desc(), Room.id)
    )
    return list((await session.execute(query)).scalars())


async def detail(session: AsyncSession, booking_id: int) -> BookingDetail:
    booking = await session.get(Booking, booking_id)
    if booking is None:
        raise NotFound(Text("no_such_booking"))
    rooms = await rooms_of_booking(session, booking_id)
    query = select(Occurrence).where(Occurrence.booking_id == booking_id).order_by(Occurrence.recurrence_id)
    occurrences = list((await session.execute(query)).scalars())
    zones = await zones_of(session, rooms)
    return BookingDetail(booking, rooms, occurrences, {k: v.key for k, v in zones.items()})


def draft_of(booking: Booking, rooms: Sequence[Room]) -> BookingDraft:
    return BookingDraft(
        title=booking.title,
        mode=booking.mode,
        host_room_id=booking.host_room_id,
        participant_room_ids=tuple(room.id for room in rooms if room.id != booking.host_room_id),
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        agenda=booking.agenda,
        attendees=booking.attendees,
        rule=booking.rrule,
        exdates=tuple(date.fromisoformat(day) for day in booking.exdates),
    )


def apply(booking: Booking, draft: BookingDraft, zone: ZoneInfo, now: datetime) -> None:
    booking.title = draft.title
    booking.agenda = draft.agenda
    booking.mode = draft.mode
    booking.host_room_id = draft.host_room_id
    booking.starts_at = draft.starts_at
    booking.ends_at = draft.ends_at
    booking.time_zone = zone.key
    booking.rrule = normalised_rule(draft.rule)
    booking.exdates = sorted(day.isoformat() for day in draft.exdates)
    booking.attendees = draft.attendees
    booking.updated_at = now


def summary(draft: BookingDraft, occurrences: int) -> dict[str, Any]:
    return {
        "title": draft.title,
        "mode": draft.mode.value,
        "rooms": list(draft.room_ids),
        "start": draft.starts_at.isoformat(),
        "end": draft.ends_at.isoformat(),
        "rule": draft.rule,
        "occurrences": occurrences,
    }
