"""What a parent sees: each child, the child's class, the class's cameras and whether each opens now (or why
not, and when the window next opens); their own viewing history. What a school sees: its view log.

Refusals computed here for display are not audited (nothing was asked for); asking to watch is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import Camera, User
from controller.live import authorize
from controller.live.authorize import Refusal
from controller.live.models import LiveSession
from controller.people import roster
from controller.people.models import Child, SchoolClass

HISTORY_LIMIT = 100
LOG_LIMIT = 500


@dataclass(frozen=True)
class CameraView:
    camera_id: int
    label: str
    available: bool
    reason: str = ""
    next_open: datetime | None = None


@dataclass(frozen=True)
class ChildView:
    child: Child
    klass: SchoolClass | None
    cameras: list[CameraView] = field(default_factory=list)


async def for_parent(session: AsyncSession, user_id: int, now: datetime) -> list[ChildView]:
    views = []
    memo = authorize.Memo()
    for child in await roster.children_of_parent(session, user_id):
        klass = None if child.class_id is None else await session.get(SchoolClass, child.class_id)
        cameras = []
        if klass is not None:
            for camera, assignment in await authorize.class_cameras(session, klass.id):
                label = assignment.label or camera.name or f"Camera {camera.id}"
                try:
                    await authorize.check(session, user_id, camera.id, child.id, now, memo)
                    cameras.append(CameraView(camera.id, label, True))
                except Refusal as exc:
                    cameras.append(CameraView(camera.id, label, False, exc.reason.value, exc.next_open))
        views.append(ChildView(child, klass, cameras))
    return views


async def open_devices(session: AsyncSession, user_id: int) -> set[str]:
    query = select(LiveSession.device).where(LiveSession.user_id == user_id, LiveSession.ended_at.is_(None))
    return set((await session.execute(query)).scalars())


@dataclass(frozen=True)
class LogLine:
    row: LiveSession
    username: str
    child_name: str
    camera_label: str


async def _lines(
    session: AsyncSession, query_filter: ColumnElement[bool], limit: int, before_id: int | None
) -> list[LogLine]:
    query = (
        select(LiveSession, User.username, Child.full_name, Camera.name)
        .join(User, User.id == LiveSession.user_id)
        .outerjoin(Child, Child.id == LiveSession.child_id)
        .outerjoin(Camera, Camera.id == LiveSession.camera_id)
        .where(query_filter)
        .order_by(LiveSession.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(LiveSession.id < before_id)
    rows = (await session.execute(query)).all()
    return [LogLine(row, username, child or "", camera or "") for row, username, child, camera in rows]


async def history(session: AsyncSession, user_id: int, before_id: int | None = None) -> list[LogLine]:
    """A parent's own views, newest first."""
    return await _lines(session, LiveSession.user_id == user_id, HISTORY_LIMIT, before_id)


async def view_log(session: AsyncSession, unit_id: int, before_id: int | None = None) -> list[LogLine]:
    """A school's views, newest first."""
    return await _lines(session, LiveSession.unit_id == unit_id, LOG_LIMIT, before_id)


def line_dict(line: LogLine) -> dict[str, object]:
    row = line.row
    return {
        "id": row.id,
        "parent": line.username,
        "child_id": row.child_id,
        "child": line.child_name,
        "camera_id": row.camera_id,
        "camera": line.camera_label,
        "device": row.device,
        "address": row.address,
        "node": row.node_id,
        "started_at": row.started_at.isoformat(),
        "played": row.seen_at is not None,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        "end_reason": row.end_reason or None,
    }
