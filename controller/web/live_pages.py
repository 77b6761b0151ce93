"""The live-view pages: the parent's page (phone-first: children, class cameras open now or why not, the player,
their history) and the school's page (cameras to classes or staff-only, viewing hours, holidays, consent policy,
the view log). Forms post back and redirect; the parent's player is the page's only script
(`/static/js/live-page.js` driving `/static/js/whep-player.js`), allowed by this page's own CSP.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from urllib.parse import quote, urlsplit

from aiohttp import web

from controller import state
from controller.db.models import Role
from controller.live import overview, settings
from controller.live.models import ConsentPolicy
from controller.live.settings import LiveSettingsError
from controller.live.watcher import LIVE
from controller.live.windows import Window, parse_hhmm
from controller.medianodes import MEDIA_NODES
from controller.people import roster
from controller.security.access import Kind, Policy, Routes, Scope, principal_of
from controller.web.i18n import language
from controller.web.live_text import live_text, script_texts
from controller.web.people_api import actor_of

logger = logging.getLogger(__name__)

PARENTS = frozenset({Role.PARENT})
SCHOOL_LIVE = frozenset({Role.ADMIN, Role.DISTRICT_TECHNICIAN, Role.SCHOOL_STAFF})
MAX_FORM_BYTES = 64 * 1024


def _csp(app: web.Application) -> str:
    """The parent page runs its own script and talks to the media nodes (WHEP) besides this origin."""
    origins = sorted(
        {f"{p.scheme}://{p.netloc}" for p in (urlsplit(n.report.public_url) for n in app[MEDIA_NODES].registry.nodes())}
    )
    connect = " ".join(["'self'", *origins])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src {connect}; media-src 'self' blob: mediastream:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


async def parent_page(request: web.Request) -> web.StreamResponse:
    """The parent's live view."""
    principal = principal_of(request)
    lang = language(request)
    async with request.app[state.DB]() as session:
        views = await overview.for_parent(session, principal.user_id, request.app[state.CLOCK].now())
        devices = await overview.open_devices(session, principal.user_id)
        history = await overview.history(session, principal.user_id)
    live = request.app[LIVE]
    failures = {}
    for view in views:
        for camera in view.cameras:
            publication = live.publication(camera.camera_id)
            if publication is not None and publication.state == "failed":
                failures[camera.camera_id] = True
    response = request.app[state.RENDERER].render(
        request,
        "live.html",
        lt=lambda key: live_text(key, lang),
        children=views,
        failures=failures,
        devices=len(devices),
        max_devices=live.max_devices,
        history=history[:20],
        texts=json.dumps(script_texts(lang), ensure_ascii=False),
    )
    response.headers["Content-Security-Policy"] = _csp(request.app)
    return response


async def school_page(request: web.Request) -> web.StreamResponse:
    """A school's live-view settings and view log."""
    unit_id = int(request.match_info["unit_id"])
    lang = language(request)
    now = request.app[state.CLOCK].now()
    async with request.app[state.DB]() as session:
        try:
            schedule = await settings.schedule_of(session, unit_id)
        except LiveSettingsError as exc:
            return web.Response(status=exc.status, text=str(exc))
        cameras = await settings.cameras_of(session, unit_id)
        classes = await roster.classes_of(session, unit_id)
        holidays = await settings.holidays_of(session, unit_id)
        policy = await settings.consent_policy_of(session, unit_id)
        log = await overview.view_log(session, unit_id)
    by_day: dict[int, Window] = {}
    for window in sorted(schedule.windows, key=lambda w: w.start_minute):
        by_day.setdefault(window.weekday, window)
    return request.app[state.RENDERER].render(
        request,
        "live_school.html",
        lt=lambda key: live_text(key, lang),
        unit_id=unit_id,
        cameras=cameras,
        classes=classes,
        windows=by_day,
        holidays="\n".join(f"{h.day.isoformat()} {h.name}".strip() for h in holidays),
        policy=policy.value,
        policies=[p.value for p in ConsentPolicy],
        open_now=schedule.open_at(now),
        next_opening=schedule.next_opening(now),
        log=log,
        error=request.query.get("error", ""),
        saved=request.query.get("saved") == "1",
    )


def _back(unit_id: int, error: str = "") -> web.HTTPSeeOther:
    if error:
        return web.HTTPSeeOther(f"/units/{unit_id}/live?error={quote(error[:200])}")
    return web.HTTPSeeOther(f"/units/{unit_id}/live?saved=1")


async def _form(request: web.Request) -> dict[str, str]:
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM_BYTES, actual_size=request.content_length)
    form = await request.post()
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def post_windows(request: web.Request) -> web.StreamResponse:
    unit_id = int(request.match_info["unit_id"])
    form = await _form(request)
    windows = []
    try:
        for day in range(7):
            start, end = form.get(f"start_{day}", "").strip(), form.get(f"end_{day}", "").strip()
            if start or end:
                windows.append(Window(day, parse_hhmm(start), parse_hhmm(end)))
    except ValueError as exc:
        raise _back(unit_id, str(exc)) from None
    return await _apply(request, unit_id, lambda s, actor, unit: settings.set_windows(s, actor, unit, windows))


async def post_holidays(request: web.Request) -> web.StreamResponse:
    unit_id = int(request.match_info["unit_id"])
    form = await _form(request)
    days: list[tuple[date, str]] = []
    for line in form.get("holidays", "").splitlines():
        if not line.strip():
            continue
        first, _, name = line.strip().partition(" ")
        try:
            days.append((date.fromisoformat(first), name))
        except ValueError:
            raise _back(unit_id, f"{first!r} is not a date YYYY-MM-DD") from None
    return await _apply(request, unit_id, lambda s, actor, unit: settings.set_holidays(s, actor, unit, days))


async def post_consent_policy(request: web.Request) -> web.StreamResponse:
    unit_id = int(request.match_info["unit_id"])
    form = await _form(request)
    try:
        policy = ConsentPolicy(form.get("consent_policy", ""))
    except ValueError:
        raise _back(unit_id, "choose a consent policy") from None
    return await _apply(request, unit_id, lambda s, actor, unit: settings.set_consent_policy(s, actor, unit, policy))


async def _apply(request: web.Request, unit_id: int, change: settings.Change) -> web.StreamResponse:
    try:
        async with request.app[state.DB].begin() as session:
            await change(session, actor_of(request), unit_id)
    except LiveSettingsError as exc:
        raise _back(unit_id, str(exc)) from None
    raise _back(unit_id)


async def post_camera(request: web.Request) -> web.StreamResponse:
    camera_id = int(request.match_info["camera_id"])
    form = await _form(request)
    choice = form.get("shown_to", "none")
    class_id = int(choice[6:]) if choice.startswith("class:") and choice[6:].isdigit() else None
    async with request.app[state.DB]() as session:
        found = await settings.camera_unit(session, camera_id)
    if found is None:
        raise web.HTTPNotFound()
    unit_id = found[1]
    try:
        async with request.app[state.DB].begin() as session:
            await settings.assign_camera(
                session, actor_of(request), camera_id, class_id=class_id, staff_only=choice == "staff",
                label=form.get("label", ""),
            )  # fmt: skip
    except LiveSettingsError as exc:
        raise _back(unit_id, str(exc)) from None
    raise _back(unit_id)


def add_routes(routes: Routes) -> None:
    school = Policy(SCHOOL_LIVE, Kind.PAGE, Scope.UNIT)
    routes.add("GET", "/live", parent_page, Policy(PARENTS, Kind.PAGE))
    routes.add("GET", "/units/{unit_id:\\d+}/live", school_page, school)
    routes.add("POST", "/units/{unit_id:\\d+}/live/windows", post_windows, school)
    routes.add("POST", "/units/{unit_id:\\d+}/live/holidays", post_holidays, school)
    routes.add("POST", "/units/{unit_id:\\d+}/live/consent-policy", post_consent_policy, school)
    routes.add("POST", "/cameras/{camera_id:\\d+}/live", post_camera, Policy(SCHOOL_LIVE, Kind.PAGE, Scope.CAMERA))
