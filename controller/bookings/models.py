"""Rooms and bookings as typed SQLAlchemy models on the shared `Base` (tables made by migration 0002).

A booking is a series: its first occurrence's start and end, an optional RRULE (RFC 5545 subset) and exception
dates. Its occurrences are materialised (`Occurrence`), and every live occurrence holds one `RoomOccupancy` row
per room it uses: that table is what the conflict check reads and what PostgreSQL's exclusion constraint guards.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base, _str_enum


class BandwidthClass(enum.StrEnum):
    """The site's link, roughly: how many video streams a room there can take."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class BookingMode(enum.StrEnum):
    MEETING = "meeting"
    CLASS = "class"
    OBSERVATION = "observation"
    TRAINING = "training"


class Room(Base):
    __tablename__ = "rooms"
    __table_args__ = (UniqueConstraint("unit_id", "name", name="uq_rooms_unit_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    capacity: Mapped[int]
    equipment: Mapped[list[str]] = mapped_column(JSON, default=list)
    bandwidth_class: Mapped[BandwidthClass] = mapped_column(_str_enum(BandwidthClass))
    booking_window_days: Mapped[int]
    max_duration_minutes: Mapped[int]
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Booking(Base):
    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    agenda: Mapped[str] = mapped_column(Text, default="")
    mode: Mapped[BookingMode] = mapped_column(_str_enum(BookingMode))
    organizer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    host_room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="RESTRICT"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    time_zone: Mapped[str] = mapped_column(String(64))
    """The host room's unit time zone when booked: recurrences expand in it (08:00 local stays 08:00)."""
    rrule: Mapped[str | None] = mapped_column(String(300))
    exdates: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Local dates (YYYY-MM-DD, in `time_zone`) on which the series has no occurrence."""
    attendees: Mapped[int | None]
    cancelled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class BookingRoom(Base):
    __tablename__ = "booking_rooms"

    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="RESTRICT"), primary_key=True, index=True)
    is_host: Mapped[bool] = mapped_column(default=False)


class Occurrence(Base):
    __tablename__ = "occurrences"
    __table_args__ = (UniqueConstraint("booking_id", "recurrence_id", name="uq_occurrences_booking_recurrence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    recurrence_id: Mapped[datetime]
    """The start the series rule gave this occurrence (RFC 5545 RECURRENCE-ID), whatever it was moved to."""
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime]
    cancelled: Mapped[bool] = mapped_column(default=False)
    detached: Mapped[bool] = mapped_column(default=False)
    """Moved on its own: a later series edit keeps its times."""


class RoomOccupancy(Base):
    __tablename__ = "room_occupancy"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ck_room_occupancy_positive"),
        Index("ix_room_occupancy_room_start", "room_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="RESTRICT"))
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"), index=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
