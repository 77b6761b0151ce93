"""What a school sets for the live view: which camera shows which class (or is staff-only), the viewing windows,
holidays and the consent policy. Every change is audited in the caller's transaction.

A change here can take a right away from a parent who is watching: the revocation watcher
(`controller.live.watcher`) re-checks every open session within seconds and closes what is no longer allowed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import Agent, Camera, Unit, UnitKind
from controller.live.models import CameraAssignment, ConsentPolicy, LivePolicy, ViewingHoliday, ViewingWindow
from controller.live.windows import Schedule, Window
from controller.people.models import SchoolClass
from controller.people.users import Actor, record

logger = logging.getLogger(__name__)

MAX_WINDOWS = 50
MAX_HOLIDAYS = 400


class LiveSettingsError(ValueError):
    """The setting is not possible; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CameraPlace:
    """A camera of a school with its live-view assignment (None: not shown to anyone yet)."""

    camera: Camera
    unit_id: int
    assignment: CameraAssignment | None


async def _school(session: AsyncSession, unit_id: int) -> Unit:
    unit = await session.get(Unit, unit_id)
    if unit is None:
        raise LiveSettingsError("no such unit", 404)
    if unit.kind is not UnitKind.SCHOOL:
        raise LiveSettingsError("viewing windows and cameras belong to a school")
    return unit


async def camera_unit(session: AsyncSession, camera_id: int) -> tuple[Camera, int] | None:
    query = select(Camera, Agent.unit_id).join(Agent, Agent.id == Camera.agent_id).where(Camera.id == camera_id)
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def cameras_of(session: AsyncSession, unit_id: int) -> list[CameraPlace]:
    """The school's cameras that are not gone, with their assignments, by name."""
    query = (
        select(Camera, Agent.unit_id, CameraAssignment)
        .join(Agent, Agent.id == Camera.agent_id)
        .outerjoin(CameraAssignment, CameraAssignment.camera_id == Camera.id)
        .where(Agent.unit_id == unit_id, Camera.gone_at.is_(None))
        .order_by(Camera.name, Camera.id)
    )
    return [CameraPlace(camera, unit, assignment) for camera, unit, assignment in (await session.execute(query)).all()]


async def assign_camera(
    session: AsyncSession, actor: Actor, camera_id: int, *, class_id: int | None, staff_only: bool, label: str
) -> CameraAssignment:
    """Show the camera to one class's parents, mark it staff-only (never shown), or neither (not shown)."""
    found = await camera_unit(session, camera_id)
    if found is None:
        raise LiveSettingsError("no such camera", 404)
    _, unit_id = found
    if staff_only and class_id is not None:
        raise LiveSettingsError("a staff-only camera cannot be shown to a class")
    if class_id is not None:
        klass = await session.get(SchoolClass, class_id)
        if klass is None or klass.unit_id != unit_id:
            raise LiveSettingsError("that class is not a class of the camera's school")
    label = " ".join(label.split())[:100]
    assignment = await session.get(CameraAssignment, camera_id)
    if assignment is None:
        assignment = CameraAssignment(camera_id=camera_id, updated_at=actor.now)
        session.add(assignment)
    assignment.class_id, assignment.staff_only, assignment.label = class_id, staff_only, label
    assignment.updated_at, assignment.updated_by = actor.now, actor.principal.user_id
    await session.flush()
    record(
        session, actor, "camera.assign", f"camera:{camera_id}", unit_id=unit_id, class_id=class_id,
        staff_only=staff_only,
    )  # fmt: skip
    return assignment


async def schedule_of(session: AsyncSession, unit_id: int) -> Schedule:
    unit = await _school(session, unit_id)
    windows = (await session.execute(select(ViewingWindow).where(ViewingWindow.unit_id == unit_id))).scalars()
    holidays = (await session.execute(select(ViewingHoliday.day).where(ViewingHoliday.unit_id == unit_id))).scalars()
    return Schedule.of(unit.time_zone, (Window(w.weekday, w.start_minute, w.end_minute) for w in windows), holidays)


async def holidays_of(session: AsyncSession, unit_id: int) -> list[ViewingHoliday]:
    query = select(ViewingHoliday).where(ViewingHoliday.unit_id == unit_id).order_by(ViewingHoliday.day)
    return list((await session.execute(query)).scalars())


async def set_windows(session: AsyncSession, actor: Actor, unit_id: int, windows: list[Window]) -> None:
    """Replace the school's viewing windows."""
    await _school(session, unit_id)
    if len(windows) > MAX_WINDOWS:
        raise LiveSettingsError(f"at most {MAX_WINDOWS} windows")
    await session.execute(delete(ViewingWindow).where(ViewingWindow.unit_id == unit_id))
    session.add_all(
        ViewingWindow(unit_id=unit_id, weekday=w.weekday, start_minute=w.start_minute, end_minute=w.end_minute)
        for w in windows
    )
    await session.flush()
    labels = [f"{w.weekday}:{w.label()}" for w in windows]
    record(session, actor, "live.windows", f"unit:{unit_id}", windows=labels)


async def set_holidays(session: AsyncSession, actor: Actor, unit_id: int, holidays: list[tuple[date, str]]) -> None:
    """Replace the school's holidays (local dates on which the cameras stay closed)."""
    await _school(session, unit_id)
    if len(holidays) > MAX_HOLIDAYS:
        raise LiveSettingsError(f"at most {MAX_HOLIDAYS} holidays")
    days = {day: " ".join(name.split())[:100] for day, name in holidays}
    await session.execute(delete(ViewingHoliday).where(ViewingHoliday.unit_id == unit_id))
    session.add_all(ViewingHoliday(unit_id=unit_id, day=day, name=name) for day, name in sorted(days.items()))
    await session.flush()
    record(session, actor, "live.holidays", f"unit:{unit_id}", days=[d.isoformat() for d in sorted(days)])


async def consent_policy_of(session: AsyncSession, unit_id: int) -> ConsentPolicy:
    policy = await session.get(LivePolicy, unit_id)
    if policy is None:
        return ConsentPolicy.ALL_CHILDREN
    try:
        return ConsentPolicy(policy.consent_policy)
    except ValueError:
        logger.error("unit %s: unknown consent policy %r; using the default", unit_id, policy.consent_policy)
        return ConsentPolicy.ALL_CHILDREN


async def set_consent_policy(session: AsyncSession, actor: Actor, unit_id: int, value: ConsentPolicy) -> None:
    await _school(session, unit_id)
    policy = await session.get(LivePolicy, unit_id)
    if policy is None:
        policy = LivePolicy(unit_id=unit_id, updated_at=actor.now)
        session.add(policy)
    policy.consent_policy, policy.updated_at, policy.updated_by = value.value, actor.now, actor.principal.user_id
    await session.flush()
    record(session, actor, "live.consent_policy", f"unit:{unit_id}", consent_policy=value.value)


Change = Callable[[AsyncSession, Actor, int], Awaitable[None]]
"""A settings change applied to one school in the caller's transaction."""
