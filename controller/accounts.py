"""Local accounts: creating users and checking a sign-in, with lockout after repeated failures.

Whatever fails (unknown name, wrong password, locked or disabled account) the caller learns only "no", and the
time spent is the same: an unknown name is checked against a dummy hash.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from controller.config import ControllerConfig
from controller.db.models import Role, Unit, UnitKind, User
from controller.security.passwords import Passwords

logger = logging.getLogger(__name__)

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 12

_SCOPE_KIND = {Role.DISTRICT_TECHNICIAN: UnitKind.DISTRICT}


class AccountError(ValueError):
    """An account cannot be made as asked; the message says why."""


async def count_users(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count(User.id)))).scalar_one())


async def create_user(
    session: AsyncSession,
    passwords: Passwords,
    *,
    username: str,
    password: str,
    role: Role,
    now: datetime,
    unit_id: int | None = None,
    display_name: str = "",
) -> User:
    if not USERNAME.match(username):
        raise AccountError("a username is 2-64 characters: lower-case letters, digits, dot, dash, underscore")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if role is Role.ADMIN and unit_id is not None:
        raise AccountError("an administrator has no unit scope")
    if role is not Role.ADMIN:
        if unit_id is None:
            raise AccountError(f"a {role} needs a unit (--unit ID)")
        unit = await session.get(Unit, unit_id)
        if unit is None:
            raise AccountError(f"unit {unit_id} does not exist")
        wanted = _SCOPE_KIND.get(role)
        if wanted is not None and unit.kind is not wanted:
            raise AccountError(f"a {role} is scoped to a {wanted}, and unit {unit_id} is a {unit.kind}")
    if (await session.execute(select(User.id).where(User.username == username))).first() is not None:
        raise AccountError(f"the username {username} is taken")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=await passwords.hash(password),
        role=role,
        unit_id=unit_id,
        created_at=now,
    )
    session.add(user)
    await session.flush()
    return user


async def authenticate(
    session: AsyncSession,
    passwords: Passwords,
    config: ControllerConfig,
    *,
    username: str,
    password: str,
    now: datetime,
) -> User | None:
    """The user when name and password match and the account is usable; None otherwise (caller commits)."""
    user = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
    if user is None:
        await passwords.verify(None, password)
        return None
    locked = user.locked_until is not None and user.locked_until > now
    if locked or user.disabled:
        await passwords.verify(None, password)
        logger.info("sign-in refused for locked or disabled account %s", user.username)
        return None
    if not await passwords.verify(user.password_hash, password):
        failures = (
            await session.execute(
                update(User)
                .where(User.id == user.id)
                .values(failed_logins=User.failed_logins + 1)
                .returning(User.failed_logins)
            )
        ).scalar_one()
        if failures >= config.login_max_failures:
            await session.execute(
                update(User)
                .where(User.id == user.id)
                .values(failed_logins=0, locked_until=now + timedelta(seconds=config.login_lockout_s))
            )
            logger.warning("account %s locked after %s failed sign-ins", user.username, failures)
        return None
    user.failed_logins = 0
    user.locked_until = None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = await passwords.hash(password)
    return user
