"""The JSON shapes of the rooms and bookings API: strict pydantic request models (extra fields refused).

Strict mode: an id is a JSON number, not "5"; times are ISO 8601 strings with a UTC offset (naive times are
refused); durations and counts have bounds, so absurd values get a 422 saying which field and why.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from controller.bookings.conflicts import MAX_DURATION
from controller.bookings.models import BandwidthClass, BookingMode

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Equipment = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
RoomId = Annotated[int, Field(ge=1, le=2**31 - 1)]
_MAX_MINUTES = int(MAX_DURATION.total_seconds() // 60)
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RoomPolicyIn(_Strict):
    booking_window_days: int = Field(default=90, ge=1, le=730, description="how many days ahead it can be booked")
    max_duration_minutes: int = Field(default=240, ge=5, le=_MAX_MINUTES, description="longest single booking")
    capacity: int = Field(default=30, ge=1, le=10000, description="people the room holds")


class RoomIn(RoomPolicyIn):
    name: Name
    equipment: list[Equipment] = Field(default_factory=list, max_length=50)
    bandwidth_class: BandwidthClass = BandwidthClass.MEDIUM
    active: bool = True


class RoomPatch(_Strict):
    name: Name | None = None
    equipment: list[Equipment] | None = Field(default=None, max_length=50)
    bandwidth_class: BandwidthClass | None = None
    active: bool | None = None
    booking_window_days: int | None = Field(default=None, ge=1, le=730)
    max_duration_minutes: int | None = Field(default=None, ge=5, le=_MAX_MINUTES)
    capacity: int | None = Field(default=None, ge=1, le=10000)

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        return self


class RecurrenceIn(_Strict):
    rule: str = Field(min_length=1, max_length=300, description="RRULE value, e.g. FREQ=WEEKLY;BYDAY=MO;COUNT=10")
    exdates: list[date] = Field(default_factory=list, max_length=1000, description="local dates left out")


def _times(start: AwareDatetime | None, end: AwareDatetime | None) -> None:
    if start is None or end is None:
        return
    if end <= start:
        raise ValueError("end must be after start")
    if end - start > MAX_DURATION:
        raise ValueError(f"a booking lasts at most {_MAX_MINUTES // 60} hours")


class BookingIn(_Strict):
    title: Name
    agenda: str = Field(default="", max_length=10000)
    mode: BookingMode
    host_room: RoomId
    participant_rooms: list[RoomId] = Field(default_factory=list, max_length=500)
    start: AwareDatetime
    end: AwareDatetime
    attendees: int | None = Field(default=None, ge=1, le=10000)
    recurrence: RecurrenceIn | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _times(self.start, self.end)
        return self


class BookingPatch(_Strict):
    """Changes to the whole series; fields left out stay. `recurrence: null` makes it a single booking."""

    title: Name | None = None
    agenda: str | None = Field(default=None, max_length=10000)
    mode: BookingMode | None = None
    host_room: RoomId | None = None
    participant_rooms: list[RoomId] | None = Field(default=None, max_length=500)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    attendees: int | None = Field(default=None, ge=1, le=10000)
    recurrence: RecurrenceIn | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        nullable = {"attendees", "recurrence"}
        nulls = sorted(n for n in self.model_fields_set - nullable if getattr(self, n) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        if ("start" in self.model_fields_set) != ("end" in self.model_fields_set):
            raise ValueError("give start and end together")
        if not self.model_fields_set:
            raise ValueError("nothing to change")
        _times(self.start, self.end)
        return self


class OccurrencePatch(_Strict):
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> Self:
        _times(self.start, self.end)
        return self


class RangeQuery(_Strict):
    start: AwareDatetime = Field(alias="from")
    end: AwareDatetime = Field(alias="to")

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.start < _EARLIEST or self.end > _LATEST:
            raise ValueError("'from' and 'to' are between the years 1970 and 9000")
        if self.end <= self.start:
            raise ValueError("'to' must be after 'from'")
        return self


class AvailabilityQuery(_Strict):
    """Query string: rooms=1,2,3&week=2026-01-05, optional days, day_start, day_end, weekdays, min_minutes."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    rooms: list[RoomId] = Field(min_length=1, max_length=200)
    week: date = Field(description="first local day of the span (any weekday)")
    days: int = Field(default=7, ge=1, le=31)
    day_start: time = time(7, 0)
    day_end: time = time(17, 0)
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(default_factory=lambda: [0, 1, 2, 3, 4, 5])
    min_minutes: int = Field(default=30, ge=5, le=_MAX_MINUTES)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.day_start.tzinfo is not None or self.day_end.tzinfo is not None:
            raise ValueError("day_start and day_end are local times without an offset (08:00)")
        if self.day_end <= self.day_start:
            raise ValueError("day_end must be after day_start")
        if len(set(self.rooms)) != len(self.rooms):
            raise ValueError("a room appears twice in rooms")
        return self
