"""Who may watch which camera now: parent -> active guardianship -> child -> the child's current class -> the
class's cameras, within the school's viewing window and consent policy.

The same check runs when a parent asks to watch (`check`) and again every few seconds for every open session
(`controller.live.watcher`): a revoked guardianship, a moved child, a withdrawn consent, a camera reassigned or
marked staff-only, or the end of the window all fail it. Anything unexpected fails closed (a refusal). Every
refusal carries a reason code the page translates and the audit log records.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import Camera, Role, User
from controller.live import settings
from controller.live.models import CameraAssignment, ConsentPolicy
from controller.people import roster

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Memo:
    """Facts read once per pass: the watcher re-checks every open view each second, and many views share a
    school (window, policy), a class (consent) and a parent, so each is read once per pass, not once per view."""

    def __init__(self) -> None:
        self._values: dict[tuple[object, ...], object] = {}

    async def get(self, key: tuple[object, ...], load: Callable[[], Awaitable[T]]) -> T:
        if key not in self._values:
            self._values[key] = await load()
        return cast(T, self._values[key])


class Reason(enum.StrEnum):
    UNKNOWN_CAMERA = "unknown_camera"
    NOT_SHOWN = "not_a_class_camera"
    STAFF_ONLY = "staff_only"
    NOT_YOUR_CLASS = "not_your_class"
    OUTSIDE_WINDOW = "outside_window"
    CONSENT_MISSING = "consent_missing"
    DEVICE_LIMIT = "device_limit"
    CAMERA_UNAVAILABLE = "camera_unavailable"
    NO_MEDIA_NODE = "no_media_node"
    PUBLISH_FAILED = "publish_failed"
    BAD_DEVICE = "bad_device"


STATUS = {
    Reason.BAD_DEVICE: 422,
    Reason.CAMERA_UNAVAILABLE: 409,
    Reason.NO_MEDIA_NODE: 409,
    Reason.PUBLISH_FAILED: 409,
}
"""HTTP status per reason: 409 when the camera or the media path is down now, 422 for a malformed device id;
403 for every right refused."""


class Refusal(Exception):
    def __init__(
        self, reason: Reason, detail: str, *, camera_id: int | None = None, next_open: datetime | None = None
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.camera_id = camera_id
        self.next_open = next_open

    @property
    def status(self) -> int:
        return STATUS.get(self.reason, 403)


@dataclass(frozen=True)
class Grant:
    camera: Camera
    unit_id: int
    class_id: int
    child_id: int
    label: str


async def resolve_camera(session: AsyncSession, identifier: str) -> int | None:
    """A camera id from what the page or a script sends: its id, its relay name (`cam-<id>`) or its endpoint
    reference (when unique). None when nothing matches."""
    text = identifier.strip()
    if text.startswith("cam-"):
        text = text[4:]
    if text.isdigit():
        number = int(text)
        return number if 0 < number < 2**31 and await session.get(Camera, number) is not None else None
    if not text or len(text) > 256:
        return None
    ids = list((await session.execute(select(Camera.id).where(Camera.endpoint_ref == text).limit(2))).scalars())
    return ids[0] if len(ids) == 1 else None


async def check(
    session: AsyncSession, user_id: int, camera_id: int, child_id: int | None, now: datetime, memo: Memo | None = None
) -> Grant:
    """The grant for `user_id` to watch `camera_id` now (for `child_id`, or any of their children in the
    camera's class); raises Refusal. The device limit and the camera's state are the caller's checks."""
    memo = memo or Memo()
    found = await memo.get(("camera", camera_id), lambda: settings.camera_unit(session, camera_id))
    if found is None:
        raise Refusal(Reason.UNKNOWN_CAMERA, "no such camera")
    camera, unit_id = found
    assignment = await memo.get(("assignment", camera_id), lambda: session.get(CameraAssignment, camera_id))
    if assignment is not None and assignment.staff_only:
        raise Refusal(Reason.STAFF_ONLY, "this camera is for school staff only", camera_id=camera_id)
    if assignment is None or assignment.class_id is None:
        raise Refusal(Reason.NOT_SHOWN, "this camera is not shown to any class", camera_id=camera_id)
    class_id = assignment.class_id
    user = await memo.get(("user", user_id), lambda: session.get(User, user_id))
    if user is None or user.disabled or user.role is not Role.PARENT:
        raise Refusal(Reason.NOT_YOUR_CLASS, "only a child's parent may watch", camera_id=camera_id)
    children = await memo.get(
        ("children", user_id, class_id), lambda: roster.parents_children_in_class(session, user_id, class_id)
    )
    if child_id is not None:
        children = [c for c in children if c == child_id]
    if not children:
        raise Refusal(Reason.NOT_YOUR_CLASS, "none of your children is in this camera's class", camera_id=camera_id)
    schedule = await memo.get(("schedule", unit_id), lambda: settings.schedule_of(session, unit_id))
    if not schedule.open_at(now):
        raise Refusal(
            Reason.OUTSIDE_WINDOW, "the school's cameras are closed now", camera_id=camera_id,
            next_open=schedule.next_opening(now),
        )  # fmt: skip
    policy = await memo.get(("policy", unit_id), lambda: settings.consent_policy_of(session, unit_id))
    if policy is ConsentPolicy.ALL_CHILDREN and not await memo.get(
        ("consented", class_id), lambda: roster.class_fully_consented(session, class_id)
    ):
        raise Refusal(Reason.CONSENT_MISSING, "not every child of the class has a consent", camera_id=camera_id)
    child = children[0]
    if policy is ConsentPolicy.OWN_CHILD and not await memo.get(
        ("consent", child), lambda: roster.has_consent(session, child)
    ):
        raise Refusal(Reason.CONSENT_MISSING, "your child has no consent recorded", camera_id=camera_id)
    return Grant(camera, unit_id, class_id, child, assignment.label or camera.name)


async def class_cameras(session: AsyncSession, class_id: int) -> list[tuple[Camera, CameraAssignment]]:
    """The cameras assigned to a class (never a staff-only one), that are not gone, by label."""
    query = (
        select(Camera, CameraAssignment)
        .join(CameraAssignment, CameraAssignment.camera_id == Camera.id)
        .where(CameraAssignment.class_id == class_id, CameraAssignment.staff_only.is_(False), Camera.gone_at.is_(None))
        .order_by(CameraAssignment.label, Camera.name, Camera.id)
    )
    return [(camera, assignment) for camera, assignment in (await session.execute(query)).all()]
