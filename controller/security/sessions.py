"""Server-side sessions: a random id in an HttpOnly cookie, only its sha256 in the database.

A new id at every sign-in, deleted at sign-out, refused after the idle or the absolute timeout.

`last_seen` (what the idle timeout counts from) is written at most once per `LAST_SEEN_RESOLUTION`, not on every
request: that write was a write transaction on every request (1-2.5 ms each, and on SQLite a writer that waits
for the single write lock behind the bookings). The price is that a session may end up to that much earlier
than the idle timeout after its last request.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from controller.config import ControllerConfig
from controller.db.models import Base, Role, User, UserSession
from controller.db.types import UTCDateTime
from controller.security.tokens import new_token, sha256_hex

LAST_SEEN_RESOLUTION = timedelta(seconds=60)
"""At most this often per session (or a tenth of the idle timeout, if that is shorter) is `last_seen` written."""


def cookie_name(config: ControllerConfig) -> str:
    # The __Host- prefix pins the cookie to this host and path / and demands Secure (browsers enforce it).
    return "__Host-ketnoi_session" if config.cookie_secure else "ketnoi_session"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the signed-in user and their session's CSRF token."""

    user_id: int
    username: str
    role: Role
    unit_id: int | None
    session_id: int
    csrf_token: str
    token_id: int | None = None
    """Set when the caller came with an API token (`controller.people.tokens`) rather than a cookie session."""

    @property
    def actor(self) -> str:
        return f"user:{self.username}"


async def start(session: AsyncSession, user: User, now: datetime, address: str | None) -> str:
    """A new session for `user`; returns the cookie value (shown to no one else, stored only hashed)."""
    token = new_token()
    session.add(
        UserSession(
            token_hash=sha256_hex(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(24),
            created_at=now,
            last_seen=now,
            address=address,
        )
    )
    await session.flush()
    return token


_LOOKUP = (
    select(
        UserSession.id,
        UserSession.user_id,
        User.username,
        User.role,
        User.unit_id,
        User.disabled,
        UserSession.csrf_token,
        UserSession.created_at,
        UserSession.last_seen,
    )
    .join(User, User.id == UserSession.user_id)
    .where(UserSession.token_hash == bindparam("token_hash"))
)
"""Built once (building it per request cost more than running it); columns, not ORM entities."""
_SESSIONS = Base.metadata.tables[UserSession.__tablename__]
_EXPIRE = delete(_SESSIONS).where(_SESSIONS.c.id == bindparam("session_id"))
_TOUCH = (
    update(_SESSIONS)
    .where(_SESSIONS.c.id == bindparam("session_id"))
    .values(last_seen=bindparam("now", type_=UTCDateTime()))
)
LOOKUP_SQLITE = """
SELECT s.id, s.user_id, u.username, u.role, u.unit_id, u.disabled, s.csrf_token, s.created_at, s.last_seen
FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?"""
"""The same lookup for a stdlib sqlite3 connection (controller.security.access's reader thread)."""


@dataclass(frozen=True)
class Found:
    """A session's row with its user's, as looked up by the hash of its cookie value."""

    session_id: int
    user_id: int
    username: str
    role: Role
    unit_id: int | None
    disabled: bool
    csrf_token: str
    created_at: datetime
    last_seen: datetime

    def principal(self) -> Principal:
        return Principal(
            user_id=self.user_id,
            username=self.username,
            role=self.role,
            unit_id=self.unit_id,
            session_id=self.session_id,
            csrf_token=self.csrf_token,
        )

    def expired(self, now: datetime, config: ControllerConfig) -> bool:
        idle = now - self.last_seen > timedelta(seconds=config.session_idle_timeout_s)
        absolute = now - self.created_at > timedelta(seconds=config.session_absolute_timeout_s)
        return idle or absolute or self.disabled

    def due(self, now: datetime, config: ControllerConfig) -> bool:
        """A write is due: the session's deletion (expired) or its `last_seen`."""
        return self.expired(now, config) or self.stale(now, config)

    def stale(self, now: datetime, config: ControllerConfig) -> bool:
        """`last_seen` is old enough to be written again (throttled to the resolution)."""
        return now - self.last_seen >= _resolution(config)


def lookup_sqlite(token_hash: str, connection: sqlite3.Connection) -> Found | None:
    """`LOOKUP_SQLITE` on a stdlib connection, with the values SQLAlchemy would give (UTC times, the role)."""
    row = connection.execute(LOOKUP_SQLITE, (token_hash,)).fetchone()
    if row is None:
        return None
    session_id, user_id, username, role, unit_id, disabled, csrf_token, created_at, last_seen = row
    return Found(
        session_id,
        user_id,
        username,
        Role(role),
        unit_id,
        bool(disabled),
        csrf_token,
        datetime.fromisoformat(created_at).replace(tzinfo=UTC),
        datetime.fromisoformat(last_seen).replace(tzinfo=UTC),
    )


async def resolve(session: AsyncSession, token: str, now: datetime, config: ControllerConfig) -> Principal | None:
    """The principal for a cookie value, or None (unknown, expired: an expired session is deleted)."""
    row = (await session.execute(_LOOKUP, {"token_hash": sha256_hex(token)})).first()
    if row is None:
        return None
    found = Found(*row)
    if found.expired(now, config):
        await session.execute(_EXPIRE, {"session_id": found.session_id})
        return None
    if found.stale(now, config):
        await session.execute(_TOUCH, {"session_id": found.session_id, "now": now})
    return found.principal()


def _resolution(config: ControllerConfig) -> timedelta:
    return min(LAST_SEEN_RESOLUTION, timedelta(seconds=config.session_idle_timeout_s / 10))


async def end(session: AsyncSession, session_id: int) -> None:
    await session.execute(delete(UserSession).where(UserSession.id == session_id))


def set_cookie(response: web.StreamResponse, config: ControllerConfig, token: str) -> None:
    response.set_cookie(
        cookie_name(config),
        token,
        max_age=config.session_absolute_timeout_s,
        path="/",
        httponly=True,
        secure=config.cookie_secure,
        samesite="Lax",
    )


def clear_cookie(response: web.StreamResponse, config: ControllerConfig) -> None:
    response.del_cookie(cookie_name(config), path="/", secure=config.cookie_secure, httponly=True, samesite="Lax")
