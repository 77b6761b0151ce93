"""The bookings service's vocabulary: its errors (each with the HTTP status the API answers) and the typed,
frozen values that cross between the API and the service."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from controller.bookings.models import BandwidthClass, Booking, BookingMode, Occurrence, Room


class BookingError(Exception):
    """A request the service refuses; `status` is the HTTP status the API answers with."""

    status = 422


class NotFound(BookingError):
    status = 404


class Forbidden(BookingError):
    status = 403


class Invalid(BookingError):
    status = 422


class Conflict(BookingError):
    status = 409


@dataclass(frozen=True)
class RoomDraft:
    name: str
    capacity: int
    equipment: tuple[str, ...] = ()
    bandwidth_class: BandwidthClass = BandwidthClass.MEDIUM
    booking_window_days: int = 90
    max_duration_minutes: int = 240
    active: bool = True


@dataclass(frozen=True)
class BookingDraft:
    """A booking as asked for (validated at the edge); `rule` is an RRULE value, `exdates` local dates."""

    title: str
    mode: BookingMode
    host_room_id: int
    starts_at: datetime
    ends_at: datetime
    participant_room_ids: tuple[int, ...] = ()
    agenda: str = ""
    attendees: int | None = None
    rule: str | None = None
    exdates: tuple[date, ...] = ()

    @property
    def room_ids(self) -> tuple[int, ...]:
        return (self.host_room_id, *self.participant_room_ids)


@dataclass(frozen=True)
class BookingDetail:
    booking: Booking
    rooms: list[Room]
    """Host first, then the participant rooms."""
    occurrences: list[Occurrence]
    time_zones: dict[int, str] = field(default_factory=dict)
    """Unit id -> time zone, for every room's unit."""


@dataclass(frozen=True)
class Listed:
    """One room's use by one occurrence, for calendars and lists."""

    room: Room
    occurrence: Occurrence
    booking: Booking
