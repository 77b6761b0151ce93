"""The JSON shapes of the rooms and bookings API's successful answers, for the OpenAPI document.

The handlers build plain dicts (controller.web.bookings_api); these models describe them, and forbid unknown
keys so that an answer that grows a field without its description fails the schemathesis run and the test
that validates real answers against them (tests/controller/bookings/test_answers.py).
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyOut(_Answer):
    booking_window_days: int
    max_duration_minutes: int
    capacity: int


class RoomOut(_Answer):
    id: int
    unit_id: int
    name: str
    equipment: list[str]
    bandwidth_class: str = Field(description="low, medium or high")
    active: bool
    policy: PolicyOut
    time_zone: str | None = Field(default=None, description="the room's unit time zone (one room's answer only)")


class RoomsOut(_Answer):
    rooms: list[RoomOut]


class BookingRoomOut(_Answer):
    id: int
    name: str
    unit_id: int
    host: bool


class OccurrenceOut(_Answer):
    id: int
    recurrence_id: AwareDatetime
    start: AwareDatetime
    end: AwareDatetime
    start_local: AwareDatetime
    end_local: AwareDatetime
    cancelled: bool
    detached: bool = Field(description="moved on its own: series edits keep its times")


class RecurrenceOut(_Answer):
    rule: str
    exdates: list[str]


class BookingOut(_Answer):
    id: int
    title: str
    agenda: str
    mode: str
    organizer_id: int
    host_room: int
    participant_rooms: list[int]
    rooms: list[BookingRoomOut]
    start: AwareDatetime
    end: AwareDatetime
    start_local: AwareDatetime
    end_local: AwareDatetime
    time_zone: str
    recurrence: RecurrenceOut | None
    attendees: int | None
    cancelled: bool
    occurrences: list[OccurrenceOut]


class ListedOut(_Answer):
    booking_id: int
    occurrence_id: int
    title: str
    mode: str
    room_id: int
    room_name: str
    host: bool
    start: AwareDatetime
    end: AwareDatetime
    start_local: AwareDatetime
    end_local: AwareDatetime


class ListingOut(_Answer):
    occurrences: list[ListedOut]


class SlotOut(_Answer):
    start: AwareDatetime
    end: AwareDatetime
    start_local: AwareDatetime
    end_local: AwareDatetime


class AvailabilityOut(_Answer):
    time_zone: str
    rooms: list[int]
    slots: list[SlotOut]
