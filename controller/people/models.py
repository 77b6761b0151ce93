"""Tables of the people side, on the same declarative base as controller.db.models (migration 0003).

A child belongs to a school (`unit_id`) and has one current class (`class_id`, denormalized for fast
authorization); every class it has been in is a row of `class_placements` (the open one has `ended_at` NULL),
so moving a child keeps its history. A guardianship links a parent user to a child; revoking it sets
`revoked_at` (the row stays). Consent records are per child; withdrawing one sets `withdrawn_at`.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base


class ApiToken(Base):
    """A token a user made for their own scripts: only its sha256 is stored; it expires and can be revoked."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class SchoolClass(Base):
    """A school's class in one school year, e.g. ("2025-2026", "Lá 1")."""

    __tablename__ = "classes"
    __table_args__ = (UniqueConstraint("unit_id", "school_year", "name", name="uq_classes_unit_year_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    school_year: Mapped[str] = mapped_column(String(9))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class Child(Base):
    """A child of a school, keyed by the school's own pupil code (`code`, unique per school)."""

    __tablename__ = "children"
    __table_args__ = (UniqueConstraint("unit_id", "code", name="uq_children_unit_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    full_name: Mapped[str] = mapped_column(String(200))
    date_of_birth: Mapped[date] = mapped_column(Date)
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id", ondelete="RESTRICT"), index=True)
    created_at: Mapped[datetime]


class ClassPlacement(Base):
    """A child in a class from `started_at` until `ended_at` (NULL: still there)."""

    __tablename__ = "class_placements"
    __table_args__ = (Index("ix_class_placements_child_started", "child_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id", ondelete="CASCADE"))
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="RESTRICT"), index=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class Guardianship(Base):
    """A parent user linked to a child; `revoked_at` set when the link ends (the row is kept)."""

    __tablename__ = "guardians"
    __table_args__ = (UniqueConstraint("child_id", "user_id", name="uq_guardians_child_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    relationship: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Consent(Base):
    """A consent to show the child's class cameras, recorded for a child; `withdrawn_at` when withdrawn."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id", ondelete="CASCADE"), index=True)
    given_by: Mapped[str] = mapped_column(String(200))
    """Who consented (a guardian's name as written on the form, or `user:NAME`)."""
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    given_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ClassStaff(Base):
    """A staff member or teacher assigned to a class."""

    __tablename__ = "class_staff"
    __table_args__ = (UniqueConstraint("class_id", "user_id", name="uq_class_staff_class_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]


PEOPLE_TABLES = ("api_tokens", "classes", "children", "class_placements", "guardians", "consents", "class_staff")
