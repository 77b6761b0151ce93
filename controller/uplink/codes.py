"""One-time enrolment codes: made by a technician for a school, shown once, stored hashed, single use.

Redeeming is one conditional UPDATE (unused and unexpired), so two agents racing with the same code cannot
both win, on SQLite or PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import EnrolmentCode, Unit, UnitKind
from controller.security.tokens import code_hash, display_code, new_code


class CodeError(ValueError):
    """The code cannot be made or used; the message says why (safe to show the caller)."""


@dataclass(frozen=True)
class NewCode:
    code: str
    """As shown to the technician (with a dash); shown once, never stored."""
    unit_id: int
    expires_at: datetime


async def make_code(
    session: AsyncSession, key: bytes, *, unit_id: int, now: datetime, lifetime_s: int, created_by: int | None
) -> NewCode:
    unit = await session.get(Unit, unit_id)
    if unit is None:
        raise CodeError(f"unit {unit_id} does not exist")
    if unit.kind is not UnitKind.SCHOOL:
        raise CodeError("enrolment codes are made for schools only")
    code = new_code()
    expires_at = now + timedelta(seconds=lifetime_s)
    session.add(
        EnrolmentCode(
            unit_id=unit_id,
            code_hash=code_hash(key, code),
            created_at=now,
            expires_at=expires_at,
            created_by=created_by,
        )
    )
    await session.flush()
    return NewCode(code=display_code(code), unit_id=unit_id, expires_at=expires_at)


async def redeem(session: AsyncSession, key: bytes, code: str, now: datetime) -> EnrolmentCode:
    """Mark the code used and return it; CodeError saying whether it is unknown, used or expired."""
    digest = code_hash(key, code)
    claimed = (
        await session.execute(
            update(EnrolmentCode)
            .where(EnrolmentCode.code_hash == digest, EnrolmentCode.used_at.is_(None), EnrolmentCode.expires_at > now)
            .values(used_at=now)
            .returning(EnrolmentCode.id)
        )
    ).scalar_one_or_none()
    row = (await session.execute(select(EnrolmentCode).where(EnrolmentCode.code_hash == digest))).scalar_one_or_none()
    if claimed is None or row is None:
        if row is None:
            raise CodeError("this enrolment code is not known: check it, or ask the technician for a new one")
        if row.used_at is not None:
            raise CodeError("this enrolment code has been used already: ask the technician for a new one")
        raise CodeError("this enrolment code has expired: ask the technician for a new one")
    return row
