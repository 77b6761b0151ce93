"""Which unit a room or a booking belongs to, for the access middleware's scope checks (Scope.ROOM, BOOKING).

A booking belongs to its host room's unit: that school's staff, the district's technician and the department's
bookers reach it through the route policy; the organizer's own rights are checked in the service.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.bookings.models import Booking, Room


async def unit_of_room(session: AsyncSession, room_id: int) -> int | None:
    return (await session.execute(select(Room.unit_id).where(Room.id == room_id))).scalar_one_or_none()


async def unit_of_booking(session: AsyncSession, booking_id: int) -> int | None:
    query = select(Room.unit_id).join(Booking, Booking.host_room_id == Room.id).where(Booking.id == booking_id)
    return (await session.execute(query)).scalar_one_or_none()
