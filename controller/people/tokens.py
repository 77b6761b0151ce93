"""API tokens for scripts: made by a user for themselves, shown once, stored as sha256, expiring, revocable.

A token is sent as `Authorization: Bearer TOKEN` and accepted by the access middleware on API routes only;
it is never a page session and never read from a cookie (so CSRF, a cookie attack, does not apply to it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import User
from controller.people.models import ApiToken
from controller.security.sessions import Principal
from controller.security.tokens import new_token, sha256_hex

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "kt_"  # noqa: S105 (a marker that makes leaked tokens easy to scan for, not a secret)
MAX_LIFETIME_DAYS = 365
MAX_TOKENS_PER_USER = 20


class TokenError(ValueError):
    """A token cannot be made or changed as asked; the message says why."""


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str
    """The token itself: shown once to its owner, stored nowhere."""


async def create(session: AsyncSession, user_id: int, *, name: str, days: int, now: datetime) -> NewToken:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise TokenError("a token needs a name of 1 to 100 characters")
    if not 1 <= days <= MAX_LIFETIME_DAYS:
        raise TokenError(f"a token lives 1 to {MAX_LIFETIME_DAYS} days")
    live = await list_for(session, user_id, now)
    if len(live) >= MAX_TOKENS_PER_USER:
        raise TokenError(f"at most {MAX_TOKENS_PER_USER} live tokens per user: revoke one first")
    secret = TOKEN_PREFIX + new_token()
    token = ApiToken(
        user_id=user_id,
        name=name,
        token_hash=sha256_hex(secret),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(token)
    await session.flush()
    return NewToken(token, secret)


async def list_for(session: AsyncSession, user_id: int, now: datetime) -> list[ApiToken]:
    """The user's tokens that are neither revoked nor expired, newest first."""
    query = (
        select(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > now)
        .order_by(ApiToken.id.desc())
    )
    return list((await session.execute(query)).scalars())


async def revoke(session: AsyncSession, user_id: int, token_id: int, now: datetime) -> ApiToken | None:
    """Revoke one of the user's own tokens; None when the user has no such token (another's is 'no such')."""
    token = (
        await session.execute(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))
    ).scalar_one_or_none()
    if token is None:
        return None
    if token.revoked_at is None:
        token.revoked_at = now
    return token


async def revoke_all(session: AsyncSession, user_id: int, now: datetime) -> None:
    for token in await list_for(session, user_id, now):
        token.revoked_at = now


async def resolve(session: AsyncSession, secret: str, now: datetime) -> Principal | None:
    """The principal for a bearer token, or None (unknown, expired, revoked, or the user disabled)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    row = (
        await session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == sha256_hex(secret))
        )
    ).first()
    if row is None:
        return None
    token, user = row
    if token.revoked_at is not None or token.expires_at <= now or user.disabled:
        return None
    token.last_used_at = now
    return Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        unit_id=user.unit_id,
        session_id=0,
        csrf_token="",
        token_id=token.id,
    )


def token_dict(token: ApiToken) -> dict[str, object]:
    return {
        "id": token.id,
        "name": token.name,
        "created_at": token.created_at.isoformat(),
        "expires_at": token.expires_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "revoked": token.revoked_at is not None,
    }
