"""Administering the units tree from the pages: who may create or change which unit, and the checked, audited
changes (name, school level, time zone).

Administrators: any unit. District technicians: schools inside their district (new ones under it, and the
existing ones), not the district itself nor anything above it. Rooms are changed through the bookings service,
which checks and audits them the same way as the API.

A unit's time zone is what its rooms' calendars and the booking form use; bookings already made keep the zone
they were made in (the series stores it), so changing it moves no booking.
"""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from controller import audit
from controller.bookings.drafts import Forbidden, Invalid, NotFound
from controller.bookings.messages import Text
from controller.db.models import Role, SchoolLevel, Unit, UnitKind
from controller.security.sessions import Principal
from controller.units import UnitError, create_unit, is_within, parents


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA zone names this system knows (read once)."""
    return frozenset(zoneinfo.available_timezones())


def check_time_zone(name: str) -> str:
    name = name.strip()
    if name not in time_zones():
        raise Invalid(Text("unknown_time_zone", zone=name))
    return name


def may_administer(principal: Principal, tree: dict[int, int | None], unit: Unit) -> bool:
    """May the principal change this unit?"""
    if principal.role is Role.ADMIN:
        return True
    return (
        principal.role is Role.DISTRICT_TECHNICIAN
        and principal.unit_id is not None
        and unit.kind is UnitKind.SCHOOL
        and is_within(tree, unit.id, principal.unit_id)
    )


def may_create(principal: Principal, tree: dict[int, int | None], kind: UnitKind, parent_id: int | None) -> bool:
    if principal.role is Role.ADMIN:
        return True
    return (
        principal.role is Role.DISTRICT_TECHNICIAN
        and principal.unit_id is not None
        and kind is UnitKind.SCHOOL
        and parent_id is not None
        and is_within(tree, parent_id, principal.unit_id)
    )


@dataclass(frozen=True)
class UnitDraft:
    name: str
    kind: UnitKind
    parent_id: int | None
    school_level: SchoolLevel | None
    time_zone: str


async def create(
    session: AsyncSession, principal: Principal, draft: UnitDraft, now: datetime, address: str | None
) -> Unit:
    if not may_create(principal, await parents(session), draft.kind, draft.parent_id):
        raise Forbidden(Text("may_not_create_unit"))
    try:
        unit = await create_unit(
            session,
            name=draft.name,
            kind=draft.kind,
            now=now,
            parent_id=draft.parent_id,
            school_level=draft.school_level,
            time_zone=check_time_zone(draft.time_zone),
        )
    except UnitError as exc:
        raise Invalid(str(exc)) from exc
    audit.record(
        session,
        at=now,
        actor=principal.actor,
        action="unit.create",
        target=f"unit:{unit.id}",
        details={"name": unit.name, "kind": unit.kind.value, "parent_id": unit.parent_id, "time_zone": unit.time_zone},
        address=address,
    )
    return unit


async def update(
    session: AsyncSession,
    principal: Principal,
    unit_id: int,
    *,
    name: str,
    school_level: SchoolLevel | None,
    time_zone: str,
    now: datetime,
    address: str | None,
) -> Unit:
    unit = await session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(Text("no_such_unit"))
    if not may_administer(principal, await parents(session), unit):
        raise Forbidden(Text("may_not_change_unit"))
    name = name.strip()
    if not name or len(name) > 200:
        raise Invalid(Text("unit_name"))
    if unit.kind is not UnitKind.SCHOOL and school_level is not None:
        raise Invalid(Text("only_schools_level"))
    changes = {"name": name, "school_level": school_level, "time_zone": check_time_zone(time_zone)}
    changed = {key: value for key, value in changes.items() if getattr(unit, key) != value}
    for key, value in changed.items():
        setattr(unit, key, value)
    if changed:
        audit.record(
            session,
            at=now,
            actor=principal.actor,
            action="unit.update",
            target=f"unit:{unit.id}",
            details={key: (value.value if isinstance(value, SchoolLevel) else value) for key, value in changed.items()},
            address=address,
        )
    return unit
