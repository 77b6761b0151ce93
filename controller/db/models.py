"""The controller's tables as typed SQLAlchemy 2 models.

Units form a tree (department > district > school); users carry a role and a unit scope (issue #3 adds rooms,
bookings and the other roles' pages on top of these). Times are aware UTC datetimes (`UTCDateTime`). Secrets
are stored only as hashes: session ids and agent tokens as sha256, enrolment codes as HMAC-SHA256 under the
server key, passwords as argon2id.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from controller.db.types import UTCDateTime
from protocol.camera import CameraState

DEFAULT_TIME_ZONE = "Asia/Ho_Chi_Minh"


class UnitKind(enum.StrEnum):
    DEPARTMENT = "department"
    DISTRICT = "district"
    SCHOOL = "school"


class SchoolLevel(enum.StrEnum):
    KINDERGARTEN = "kindergarten"
    PRIMARY = "primary"
    LOWER_SECONDARY = "lower_secondary"
    UPPER_SECONDARY = "upper_secondary"
    CONTINUING = "continuing"


class Role(enum.StrEnum):
    ADMIN = "admin"
    DEPARTMENT_BOOKER = "department_booker"
    DISTRICT_TECHNICIAN = "district_technician"
    SCHOOL_STAFF = "school_staff"
    TEACHER = "teacher"
    PARENT = "parent"


def _str_enum(cls: type[enum.StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=32, values_callable=lambda members: [m.value for m in members])


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012 (the SQLAlchemy hook is a class dict)


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[UnitKind] = mapped_column(_str_enum(UnitKind))
    school_level: Mapped[SchoolLevel | None] = mapped_column(_str_enum(SchoolLevel))
    time_zone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIME_ZONE)
    camera_networks: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[Role] = mapped_column(_str_enum(Role))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class UserSession(Base):
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen: Mapped[datetime]
    address: Mapped[str | None] = mapped_column(String(64))


class EnrolmentCode(Base):
    __tablename__ = "enrolment_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hostname: Mapped[str] = mapped_column(String(253))
    version: Mapped[str] = mapped_column(String(64))
    enrolled_at: Mapped[datetime]
    last_seen: Mapped[datetime | None]
    online: Mapped[bool] = mapped_column(default=False)
    last_seq: Mapped[int] = mapped_column(default=0)
    connected_from: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None]


class Camera(Base):
    __tablename__ = "cameras"
    __table_args__ = (UniqueConstraint("agent_id", "endpoint_ref", name="uq_cameras_agent_endpoint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    endpoint_ref: Mapped[str] = mapped_column(String(256))
    state: Mapped[CameraState] = mapped_column(_str_enum(CameraState))
    reason: Mapped[str] = mapped_column(String(256), default="")
    address: Mapped[str] = mapped_column(String(256), default="")
    name: Mapped[str] = mapped_column(String(256), default="")
    manufacturer: Mapped[str] = mapped_column(String(256), default="")
    model: Mapped[str] = mapped_column(String(256), default="")
    firmware: Mapped[str] = mapped_column(String(256), default="")
    serial: Mapped[str] = mapped_column(String(256), default="")
    profiles: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    snapshot_uri: Mapped[str | None] = mapped_column(String(2048))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    changed_at: Mapped[datetime]
    gone_at: Mapped[datetime | None]
    approved: Mapped[bool] = mapped_column(default=False)
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    address: Mapped[str | None] = mapped_column(String(64))


class SsoLink(Base):
    """A person at the Department's provider (issuer + subject) linked to a local user (controller/sso/links.py).

    `link_key` is sha256(issuer, subject): the unique lookup key. Links moved from the old `!sso:<key>` password
    markers keep their key, with issuer and subject NULL until the person's next sign-in fills them in."""

    __tablename__ = "sso_links"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_sso_links_issuer_subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_key: Mapped[str] = mapped_column(String(64), unique=True)
    issuer: Mapped[str | None] = mapped_column(String(512))
    subject: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    """Who linked it, as the audit log names actors (`user:NAME`, `cli`, `system:sso`, `migration`)."""
