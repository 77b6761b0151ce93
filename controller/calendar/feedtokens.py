"""Calendar feed tokens: a secret in the feed URL for calendar clients that cannot send a header.

One per user: `secrets.token_urlsafe(32)` with the prefix `kf_` (256 random bits), shown once, stored as its
SHA-256 only. Making a new one replaces the old (the old URL stops working at once); revoking deletes the row.
It opens the user's own feeds only (never the API, never a page), as the user's current role and unit, and
nothing when the user is disabled or no longer has a booking role.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from controller.bookings.policies import BOOKERS
from controller.db.models import Base, User
from controller.security.sessions import Principal
from controller.security.tokens import new_token, sha256_hex

PREFIX = "kf_"
MAX_LENGTH = 200


class CalendarFeedToken(Base):
    __tablename__ = "calendar_feed_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


async def rotate(session: AsyncSession, user_id: int, now: datetime) -> str:
    """A new token for the user (the old one, if any, stops working); the secret is returned once."""
    secret = PREFIX + new_token()
    await session.execute(delete(CalendarFeedToken).where(CalendarFeedToken.user_id == user_id))
    await session.flush()
    session.add(CalendarFeedToken(user_id=user_id, token_hash=sha256_hex(secret), created_at=now))
    return secret


async def revoke(session: AsyncSession, user_id: int) -> bool:
    result = await session.execute(delete(CalendarFeedToken).where(CalendarFeedToken.user_id == user_id))
    return bool(getattr(result, "rowcount", 0))


async def resolve(session: AsyncSession, secret: str, now: datetime) -> Principal | None:
    if not secret.startswith(PREFIX) or len(secret) > MAX_LENGTH:
        return None
    query = (
        select(CalendarFeedToken, User)
        .join(User, User.id == CalendarFeedToken.user_id)
        .where(CalendarFeedToken.token_hash == sha256_hex(secret))
    )
    row = (await session.execute(query)).first()
    if row is None:
        return None
    token, user = row
    if user.disabled or user.role not in BOOKERS:
        return None
    token.last_used_at = now
    return Principal(
        user_id=user.id, username=user.username, role=user.role, unit_id=user.unit_id, session_id=0, csrf_token=""
    )
