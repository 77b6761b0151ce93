"""Tables of the parent live view (migration 0005), on the same declarative base as controller.db.models.

A camera is shown to parents only through a `CameraAssignment` to a class; a staff-only camera (toilets,
changing rooms, kitchens) can never be assigned to a class (a check constraint says so). A school's viewing
windows are weekday + minutes of the day in the school's time zone; holidays close a whole local day. The consent
policy is per school. Every live view is a `LiveSession` row: who, which child and camera, from where, on which
device and media node, when it started and ended and why it ended.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base


class ConsentPolicy(enum.StrEnum):
    ALL_CHILDREN = "all_children"
    """Default: a class camera opens only when every child now in the class has a consent in force."""
    OWN_CHILD = "own_child"
    """The watching parent's own child must have a consent in force."""
    NONE = "none"
    """The school collects consent some other way (on enrolment): no per-child record is needed."""


class CameraAssignment(Base):
    """A camera's place in the live view: a class's camera, or staff-only (never shown to parents)."""

    __tablename__ = "camera_assignments"
    __table_args__ = (
        CheckConstraint("NOT (staff_only AND class_id IS NOT NULL)", name="ck_camera_assignments_staff_only"),
    )

    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True)
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id", ondelete="SET NULL"), index=True)
    staff_only: Mapped[bool] = mapped_column(default=False)
    label: Mapped[str] = mapped_column(String(100), default="")
    """What parents see instead of the camera's ONVIF name (e.g. "Góc chơi")."""
    updated_at: Mapped[datetime]
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ViewingWindow(Base):
    """Parents may watch on `weekday` (0 = Monday) from `start_minute` to `end_minute` (local, half-open)."""

    __tablename__ = "viewing_windows"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="ck_viewing_windows_weekday"),
        CheckConstraint(
            "start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute", name="ck_viewing_windows_minutes"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int]
    start_minute: Mapped[int]
    end_minute: Mapped[int]


class ViewingHoliday(Base):
    """A local date on which the school's cameras stay closed to parents."""

    __tablename__ = "viewing_holidays"
    __table_args__ = (UniqueConstraint("unit_id", "day", name="uq_viewing_holidays_unit_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    day: Mapped[date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(100), default="")


class LivePolicy(Base):
    """A school's live-view settings; a school without a row has the defaults (ALL_CHILDREN)."""

    __tablename__ = "live_policies"

    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    consent_policy: Mapped[str] = mapped_column(String(32), default=ConsentPolicy.ALL_CHILDREN.value)
    updated_at: Mapped[datetime]
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class LiveSession(Base):
    """One live view: the audit record of who watched what, from where, and how it ended."""

    __tablename__ = "live_sessions"
    __table_args__ = (Index("ix_live_sessions_open", "ended_at", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    """The session id in view tokens and node reports (random, not guessable)."""
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    child_id: Mapped[int | None] = mapped_column(ForeignKey("children.id", ondelete="SET NULL"))
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id", ondelete="SET NULL"))
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id", ondelete="SET NULL"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    device: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    node_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime | None]
    """When a node last listed the session as playing."""
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str] = mapped_column(String(64), default="")


LIVE_TABLES = ("camera_assignments", "viewing_windows", "viewing_holidays", "live_policies", "live_sessions")
