"""The live-view JSON API: parents list and watch their children's class cameras, see why one is closed, end
a view and read their history; schools assign cameras to classes (or staff-only), set viewing windows,
holidays and the consent policy, and read the view log. See controller/README.md, "Parent live view".
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from controller import state
from controller.db.models import Role
from controller.live import overview, settings
from controller.live.authorize import Refusal
from controller.live.models import ConsentPolicy
from controller.live.service import Started, Viewer
from controller.live.settings import LiveSettingsError
from controller.live.watcher import LIVE
from controller.live.windows import Window, parse_hhmm
from controller.people import roster
from controller.security.access import Policy, Routes, Scope, principal_of
from controller.web.errors import error
from controller.web.people_api import BadBody, actor_of, parse
from controller.web.render import DISPLAY_ZONE

logger = logging.getLogger(__name__)

PARENTS = frozenset({Role.PARENT})
SCHOOL_LIVE = frozenset({Role.ADMIN, Role.DISTRICT_TECHNICIAN, Role.SCHOOL_STAFF})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WatchBody(_Strict):
    camera: int | str = Field(description="the camera's id, its relay name (cam-<id>) or its endpoint reference")
    device: str = Field(min_length=1, max_length=300, description="this browser's device id (8-64 of A-Z a-z 0-9 _ -)")
    child_id: int | None = Field(default=None, ge=0, le=2**31 - 1)

    @field_validator("camera")
    @classmethod
    def _camera(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not 1 <= len(value) <= 300:
            raise ValueError("camera is 1 to 300 characters")
        return value


class SessionBody(_Strict):
    session: int = Field(ge=0, le=2**31 - 1, description="the view's id (from /api/live/watch)")


class SessionQuery(_Strict):
    session: int = Field(ge=0, le=2**31 - 1, description="the view's id (from /api/live/watch)")


class WindowItem(_Strict):
    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    start: str = Field(max_length=5, description="HH:MM, local time of the school")
    end: str = Field(max_length=5, description="HH:MM (24:00 allowed), after start")


class WindowsBody(_Strict):
    windows: list[WindowItem] = Field(max_length=settings.MAX_WINDOWS)


class HolidayItem(_Strict):
    day: date
    name: str = Field(default="", max_length=100)


class HolidaysBody(_Strict):
    holidays: list[HolidayItem] = Field(max_length=settings.MAX_HOLIDAYS)


class ConsentPolicyBody(_Strict):
    consent_policy: ConsentPolicy


class AssignBody(_Strict):
    class_id: int | None = Field(default=None, ge=0, le=2**31 - 1)
    staff_only: bool = False
    label: str = Field(default="", max_length=100)


def _local(value: datetime | None) -> str | None:
    return value.astimezone(DISPLAY_ZONE).isoformat() if value else None


def refusal_answer(refusal: Refusal) -> web.Response:
    body = {"error": refusal.detail, "reason": refusal.reason.value, "next_open": _local(refusal.next_open)}
    return web.json_response(body, status=refusal.status)


def started_dict(started: Started) -> dict[str, object]:
    return {
        "session": started.session_id,
        "camera_id": started.camera_id,
        "child_id": started.child_id,
        "label": started.label,
        "room": started.room,
        "node": started.node_id,
        "node_url": started.node_url,
        "whep_url": started.whep_url,
        "token": started.token,
        "expires_at": started.expires_at.isoformat(),
        "ice_servers": [server.model_dump(exclude_none=True) for server in started.ice_servers],
    }


def viewer_of(request: web.Request) -> Viewer:
    principal = principal_of(request)
    return Viewer(principal.user_id, principal.actor, request.remote, request.headers.get("User-Agent", ""))


# -- parents ------------------------------------------------------------------------------------------------
async def my_cameras(request: web.Request) -> web.StreamResponse:
    """The caller's children, their classes and class cameras: open now, or why not and when they open."""
    principal = principal_of(request)
    live = request.app[LIVE]
    async with request.app[state.DB]() as session:
        views = await overview.for_parent(session, principal.user_id, request.app[state.CLOCK].now())
        devices = await overview.open_devices(session, principal.user_id)
    children = []
    for view in views:
        cameras = []
        for camera in view.cameras:
            publication = live.publication(camera.camera_id)
            failed = publication.reason if publication is not None and publication.state == "failed" else None
            cameras.append(
                {
                    "id": camera.camera_id,
                    "label": camera.label,
                    "available": camera.available,
                    "reason": camera.reason or None,
                    "next_open": _local(camera.next_open),
                    "publish_failure": failed,
                }
            )
        klass = view.klass
        children.append(
            {
                "child": {"id": view.child.id, "full_name": view.child.full_name},
                "class": None if klass is None else {"id": klass.id, "name": klass.name},
                "cameras": cameras,
            }
        )
    return web.json_response({"children": children, "devices_in_use": len(devices), "max_devices": live.max_devices})


async def watch(request: web.Request) -> web.StreamResponse:
    """Ask to watch a camera: the node's WHEP URL, a viewer token and ICE servers, or why not (audited)."""
    try:
        body = await parse(request, WatchBody)
    except BadBody as exc:
        return error(422, exc.message)
    try:
        started = await request.app[LIVE].watch(viewer_of(request), str(body.camera), body.child_id, body.device)
    except Refusal as refusal:
        return refusal_answer(refusal)
    return web.json_response(started_dict(started))


async def view_status(request: web.Request) -> web.StreamResponse:
    """One of the caller's views: open or ended (and why), and the camera's publication state."""
    raw = request.query.get("session", "")
    if not raw.isdigit() or int(raw) > 2**31 - 1:
        return error(422, "session: give the view's id")
    principal = principal_of(request)
    async with request.app[state.DB]() as session:
        lines = await overview.history(session, principal.user_id, before_id=int(raw) + 1)
    line = next((ln for ln in lines if ln.row.id == int(raw)), None)
    if line is None:
        return error(404, "no such view")
    answer = overview.line_dict(line)
    publication = None if line.row.camera_id is None else request.app[LIVE].publication(line.row.camera_id)
    answer["publish_state"] = publication.state if publication is not None else None
    answer["publish_reason"] = publication.reason if publication is not None and publication.reason else None
    return web.json_response(answer)


async def end_view(request: web.Request) -> web.StreamResponse:
    """End one of the caller's views (the page does it when the player stops)."""
    try:
        body = await parse(request, SessionBody)
    except BadBody as exc:
        return error(422, exc.message)
    principal = principal_of(request)
    ended = await request.app[LIVE].end([body.session], "stopped_by_viewer", principal.actor, user_id=principal.user_id)
    if not ended:
        return error(404, "no such open view")
    return web.json_response({"ended": ended})


async def my_history(request: web.Request) -> web.StreamResponse:
    """The caller's own views, newest first."""
    principal = principal_of(request)
    async with request.app[state.DB]() as session:
        lines = await overview.history(session, principal.user_id)
    return web.json_response({"views": [overview.line_dict(line) for line in lines]})


# -- schools ------------------------------------------------------------------------------------------------
async def unit_live(request: web.Request) -> web.StreamResponse:
    """A school's live-view settings: cameras and their assignments, classes, windows, holidays, consent."""
    unit_id = int(request.match_info["unit_id"])
    async with request.app[state.DB]() as session:
        try:
            schedule = await settings.schedule_of(session, unit_id)
        except LiveSettingsError as exc:
            return error(exc.status, str(exc))
        cameras = await settings.cameras_of(session, unit_id)
        classes = await roster.classes_of(session, unit_id)
        holidays = await settings.holidays_of(session, unit_id)
        policy = await settings.consent_policy_of(session, unit_id)
    now = request.app[state.CLOCK].now()
    return web.json_response(
        {
            "unit_id": unit_id,
            "time_zone": schedule.zone.key,
            "open_now": schedule.open_at(now),
            "next_opening": _local(schedule.next_opening(now)),
            "consent_policy": policy.value,
            "windows": [
                {"weekday": w.weekday, "start": w.label()[:5], "end": w.label()[6:]}
                for w in sorted(schedule.windows, key=lambda w: (w.weekday, w.start_minute))
            ],
            "holidays": [{"day": h.day.isoformat(), "name": h.name} for h in holidays],
            "classes": [roster.class_dict(c) for c in classes],
            "cameras": [
                {
                    "id": place.camera.id,
                    "name": place.camera.name,
                    "state": place.camera.state.value,
                    "class_id": place.assignment.class_id if place.assignment else None,
                    "staff_only": place.assignment.staff_only if place.assignment else False,
                    "label": place.assignment.label if place.assignment else "",
                }
                for place in cameras
            ],
        }
    )


async def put_windows(request: web.Request) -> web.StreamResponse:
    """Replace the school's viewing windows (weekday, HH:MM-HH:MM in the school's time zone)."""
    try:
        body = await parse(request, WindowsBody)
        windows = [Window(w.weekday, parse_hhmm(w.start), parse_hhmm(w.end)) for w in body.windows]
    except BadBody as exc:
        return error(422, exc.message)
    except ValueError as exc:
        return error(422, f"windows: {exc}")
    return await _change(request, lambda session, actor, unit: settings.set_windows(session, actor, unit, windows))


async def put_holidays(request: web.Request) -> web.StreamResponse:
    """Replace the school's holidays (local dates when the cameras stay closed)."""
    try:
        body = await parse(request, HolidaysBody)
    except BadBody as exc:
        return error(422, exc.message)
    days = [(h.day, h.name) for h in body.holidays]
    return await _change(request, lambda session, actor, unit: settings.set_holidays(session, actor, unit, days))


async def put_consent_policy(request: web.Request) -> web.StreamResponse:
    """Set the school's consent policy: all_children (default), own_child or none."""
    try:
        body = await parse(request, ConsentPolicyBody)
    except BadBody as exc:
        return error(422, exc.message)
    policy = body.consent_policy
    return await _change(request, lambda s, actor, unit: settings.set_consent_policy(s, actor, unit, policy))


async def _change(request: web.Request, change: settings.Change) -> web.StreamResponse:
    unit_id = int(request.match_info["unit_id"])
    try:
        async with request.app[state.DB].begin() as session:
            await change(session, actor_of(request), unit_id)
    except LiveSettingsError as exc:
        return error(exc.status, str(exc))
    return await unit_live(request)


async def put_camera(request: web.Request) -> web.StreamResponse:
    """Show a camera to one class, mark it staff-only (never shown to parents), or neither."""
    try:
        body = await parse(request, AssignBody)
    except BadBody as exc:
        return error(422, exc.message)
    camera_id = int(request.match_info["camera_id"])
    try:
        async with request.app[state.DB].begin() as session:
            assignment = await settings.assign_camera(
                session, actor_of(request), camera_id, class_id=body.class_id, staff_only=body.staff_only,
                label=body.label,
            )  # fmt: skip
            answer = {
                "camera_id": assignment.camera_id,
                "class_id": assignment.class_id,
                "staff_only": assignment.staff_only,
                "label": assignment.label,
            }
    except LiveSettingsError as exc:
        return error(exc.status, str(exc))
    return web.json_response(answer)


async def unit_view_log(request: web.Request) -> web.StreamResponse:
    """The school's view log: who watched which camera, for which child, from where, when, how it ended."""
    unit_id = int(request.match_info["unit_id"])
    async with request.app[state.DB]() as session:
        lines = await overview.view_log(session, unit_id)
    return web.json_response({"views": [overview.line_dict(line) for line in lines]})


def add_routes(routes: Routes) -> None:
    parent = Policy(PARENTS)
    school = Policy(SCHOOL_LIVE, scope=Scope.UNIT)
    routes.add("GET", "/api/live/cameras", my_cameras, parent)
    routes.add("POST", "/api/live/watch", watch, parent, body=WatchBody)
    routes.add("GET", "/api/live/status", view_status, parent, query=SessionQuery)
    routes.add("POST", "/api/live/end", end_view, parent, body=SessionBody)
    routes.add("GET", "/api/live/history", my_history, parent)
    routes.add("GET", "/api/units/{unit_id}/live", unit_live, school)
    routes.add("PUT", "/api/units/{unit_id}/live/windows", put_windows, school, body=WindowsBody)
    routes.add("PUT", "/api/units/{unit_id}/live/holidays", put_holidays, school, body=HolidaysBody)
    routes.add("PUT", "/api/units/{unit_id}/live/consent-policy", put_consent_policy, school, body=ConsentPolicyBody)
    routes.add("GET", "/api/units/{unit_id}/live/sessions", unit_view_log, school)
    routes.add(
        "PUT", "/api/cameras/{camera_id}/live", put_camera, Policy(SCHOOL_LIVE, scope=Scope.CAMERA), body=AssignBody
    )
