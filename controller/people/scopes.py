"""Which unit a class, a child or a user belongs to, for the access middleware's scope checks, and whether a
parent is an active guardian of a child (the only scope a parent has).

A user without a unit (an administrator) resolves to NO_UNIT: it exists, and is out of every scoped role's
reach (only administrators, who see all, may act on it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import User
from controller.people.models import Child, Guardianship, SchoolClass

NO_UNIT = 0
"""Unit ids start at 1: this stands for "exists, but belongs to no unit"."""

UnitOf = Callable[[AsyncSession, int], Awaitable[int | None]]


async def unit_of_class(session: AsyncSession, class_id: int) -> int | None:
    return (await session.execute(select(SchoolClass.unit_id).where(SchoolClass.id == class_id))).scalar_one_or_none()


async def unit_of_child(session: AsyncSession, child_id: int) -> int | None:
    return (await session.execute(select(Child.unit_id).where(Child.id == child_id))).scalar_one_or_none()


async def unit_of_user(session: AsyncSession, user_id: int) -> int | None:
    row = (await session.execute(select(User.unit_id).where(User.id == user_id))).first()
    if row is None:
        return None
    return row[0] if row[0] is not None else NO_UNIT


async def is_guardian(session: AsyncSession, user_id: int, child_id: int) -> bool:
    """True when `user_id` has an unrevoked guardianship of `child_id`."""
    query = select(Guardianship.id).where(
        Guardianship.user_id == user_id, Guardianship.child_id == child_id, Guardianship.revoked_at.is_(None)
    )
    return (await session.execute(query)).first() is not None
