"""Who may book or manage which room, and each room's own policy: booking window, maximum duration, capacity.

Booking: admins and department bookers anywhere; district technicians in their district; school staff and
teachers in their own school. Managing rooms (create, edit, policy): admins anywhere, district technicians in
their district. The route policies (security/access.py) check the unit in the path; these functions check the
rooms named in a request body.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from controller.bookings.conflicts import MAX_DURATION
from controller.bookings.messages import Text
from controller.bookings.models import Room
from controller.bookings.recurrence import Slot
from controller.db.models import Role
from controller.security.sessions import Principal
from controller.units import is_within

BOOKERS = frozenset({Role.ADMIN, Role.DEPARTMENT_BOOKER, Role.DISTRICT_TECHNICIAN, Role.SCHOOL_STAFF, Role.TEACHER})
ROOM_MANAGERS = frozenset({Role.ADMIN, Role.DISTRICT_TECHNICIAN})
PAST_GRACE = timedelta(minutes=5)
"""A start this little in the past is still accepted (a form filled in at 08:00 and sent at 08:01)."""


class PolicyError(ValueError):
    """A room's policy refuses the booking; the message names the room and the rule."""


def may_book(principal: Principal, tree: dict[int, int | None], unit_id: int) -> bool:
    role = principal.role
    if role in (Role.ADMIN, Role.DEPARTMENT_BOOKER):
        return True
    if principal.unit_id is None:
        return False
    if role is Role.DISTRICT_TECHNICIAN:
        return is_within(tree, unit_id, principal.unit_id)
    return role in (Role.SCHOOL_STAFF, Role.TEACHER) and unit_id == principal.unit_id


def may_manage(principal: Principal, tree: dict[int, int | None], unit_id: int) -> bool:
    if principal.role is Role.ADMIN:
        return True
    return (
        principal.role is Role.DISTRICT_TECHNICIAN
        and principal.unit_id is not None
        and is_within(tree, unit_id, principal.unit_id)
    )


def check_duration(starts_at: datetime, ends_at: datetime) -> None:
    """The limits every booking has, whatever the room: a positive duration of at most MAX_DURATION."""
    if ends_at <= starts_at:
        raise PolicyError(Text("end_after_start"))
    if ends_at - starts_at > MAX_DURATION:
        raise PolicyError(Text("max_hours", hours=int(MAX_DURATION.total_seconds() // 3600)))


def check_rooms(
    rooms: Iterable[Room],
    slots: Iterable[Slot],
    *,
    now: datetime,
    attendees: int | None,
    zones: dict[int, ZoneInfo],
) -> None:
    """Refuse when a room is inactive, or a slot breaks a room's window, maximum duration or capacity.

    The caller passes the slots it is making (a series edit keeps its past occurrences as they were, and does
    not pass them); `zones` maps a room's unit id to its time zone, for the messages.
    """
    upcoming = list(slots)
    for room in rooms:
        zone = zones[room.unit_id]
        if not room.active:
            raise PolicyError(Text("room_inactive", room=room.name))
        if attendees is not None and attendees > room.capacity:
            raise PolicyError(Text("room_capacity", room=room.name, capacity=room.capacity, attendees=attendees))
        horizon = now + timedelta(days=room.booking_window_days)
        for slot in upcoming:
            if slot.starts_at < now - PAST_GRACE:
                raise PolicyError(Text("starts_in_past", at=f"{slot.starts_at.astimezone(zone):%Y-%m-%d %H:%M}"))
            if slot.starts_at > horizon:
                raise PolicyError(
                    Text(
                        "booking_window",
                        room=room.name,
                        days=room.booking_window_days,
                        horizon=f"{horizon.astimezone(zone):%Y-%m-%d %H:%M}",
                        at=f"{slot.starts_at.astimezone(zone):%Y-%m-%d %H:%M}",
                    )
                )
            minutes = (slot.ends_at - slot.starts_at).total_seconds() / 60
            if minutes > room.max_duration_minutes:
                raise PolicyError(
                    Text("max_minutes", room=room.name, limit=room.max_duration_minutes, minutes=f"{minutes:g}")
                )
