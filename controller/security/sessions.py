"""Server-side sessions: a random id in an HttpOnly cookie, only its sha256 in the database.

A new id at every sign-in, deleted at sign-out, refused after the idle or the absolute timeout.

`last_seen` (what the idle timeout counts from) is written at most once per `LAST_SEEN_RESOLUTION`, not on every
request: that write was a write transaction on every request (1-2.5 ms each, and on SQLite a writer that waits
for the single write lock behind the bookings). The price is that a session may end up to that much earlier
than the idle timeout after its last request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.config import ControllerConfig
from controller.db.models import Role, User, UserSession
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


async def resolve(session: AsyncSession, token: str, now: datetime, config: ControllerConfig) -> Principal | None:
    """The principal for a cookie value, or None (unknown, expired: an expired session is deleted)."""
    row = (
        await session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == sha256_hex(token))
        )
    ).first()
    if row is None:
        return None
    record, user = row
    idle = now - record.last_seen > timedelta(seconds=config.session_idle_timeout_s)
    absolute = now - record.created_at > timedelta(seconds=config.session_absolute_timeout_s)
    if idle or absolute or user.disabled:
        await session.delete(record)
        return None
    if now - record.last_seen >= _resolution(config):
        record.last_seen = now
    return Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        unit_id=user.unit_id,
        session_id=record.id,
        csrf_token=record.csrf_token,
    )


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
