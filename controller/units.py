"""The units tree: creating units and answering "is this unit inside that one" for scope checks."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import DEFAULT_TIME_ZONE, SchoolLevel, Unit, UnitKind

_PARENT_KIND = {
    UnitKind.DEPARTMENT: (),
    UnitKind.DISTRICT: (UnitKind.DEPARTMENT,),
    UnitKind.SCHOOL: (UnitKind.DEPARTMENT, UnitKind.DISTRICT),
}


class UnitError(ValueError):
    """A unit cannot be made as asked; the message says why."""


async def create_unit(
    session: AsyncSession,
    *,
    name: str,
    kind: UnitKind,
    now: datetime,
    parent_id: int | None = None,
    school_level: SchoolLevel | None = None,
    camera_networks: Iterable[str] = (),
    time_zone: str = DEFAULT_TIME_ZONE,
) -> Unit:
    name = name.strip()
    if not name or len(name) > 200:
        raise UnitError("a unit needs a name of 1 to 200 characters")
    networks = [str(ipaddress.ip_network(cidr, strict=False)) for cidr in camera_networks]
    if kind is not UnitKind.SCHOOL and (school_level is not None or networks):
        raise UnitError("only schools have a school level and camera networks")
    if parent_id is None:
        if kind is not UnitKind.DEPARTMENT:
            raise UnitError(f"a {kind} needs a parent unit")
    else:
        parent = await session.get(Unit, parent_id)
        if parent is None:
            raise UnitError(f"parent unit {parent_id} does not exist")
        if parent.kind not in _PARENT_KIND[kind]:
            raise UnitError(f"a {kind} cannot be inside a {parent.kind}")
    unit = Unit(
        name=name,
        kind=kind,
        parent_id=parent_id,
        school_level=school_level,
        camera_networks=networks,
        time_zone=time_zone,
        created_at=now,
    )
    session.add(unit)
    await session.flush()
    return unit


async def parents(session: AsyncSession) -> dict[int, int | None]:
    """unit id -> parent id for the whole tree (a province has a few thousand units at most)."""
    rows = await session.execute(select(Unit.id, Unit.parent_id))
    return {unit_id: parent_id for unit_id, parent_id in rows.all()}


def is_within(tree: dict[int, int | None], unit_id: int, ancestor_id: int) -> bool:
    """True when `unit_id` is `ancestor_id` or below it."""
    seen: set[int] = set()
    current: int | None = unit_id
    while current is not None and current not in seen:
        if current == ancestor_id:
            return True
        seen.add(current)
        current = tree.get(current)
    return False
