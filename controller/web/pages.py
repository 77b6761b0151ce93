"""The technician's pages: sign-in and sign-out, the schools overview, a school's agents and cameras."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from sqlalchemy import select

from controller import accounts, audit, state
from controller.db.models import Role, Unit
from controller.security import sessions
from controller.security import signin as signin_flow
from controller.security.access import ADMINS, TECHNICIANS, Kind, Policy, Routes, Scope, principal_of, public
from controller.uplink import actions
from controller.uplink.actions import ActionError
from controller.uplink.codes import CodeError, NewCode
from controller.web import views

logger = logging.getLogger(__name__)

PAGE = Policy(roles=TECHNICIANS, kind=Kind.PAGE)


def _safe_next(value: object) -> str:
    """Only a local path: no scheme, no host, no //host (no open redirect)."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value[:512]


async def signin_page(request: web.Request) -> web.StreamResponse:
    return await _signin_form(request, error=None, status=200, next_path=_safe_next(request.query.get("next")))


async def _signin_form(request: web.Request, *, error: str | None, status: int, next_path: str) -> web.Response:
    async with request.app[state.DB]() as session:
        first_run = await accounts.count_users(session) == 0
    return request.app[state.RENDERER].render(
        request,
        "signin.html",
        status=status,
        error=error,
        first_run=first_run,
        next=next_path,
        sso=request.app[state.CONFIG].sso_enabled,
    )


async def signin(request: web.Request) -> web.StreamResponse:
    app = request.app
    address = request.remote or "unknown"
    form = await request.post()
    next_path = _safe_next(form.get("next"))
    if not app[state.LOGIN_LIMITER].allow(address):
        return await _signin_form(request, error="too_many", status=429, next_path=next_path)
    username = str(form.get("username", ""))[:64].strip().lower()
    password = str(form.get("password", ""))[:1024]
    now = app[state.CLOCK].now()
    async with app[state.DB].begin() as session:
        user = await signin_flow.with_password(session, request, username=username, password=password, now=now)
        token = None if user is None else await signin_flow.start(session, request, user, now=now, action="signin")
    if user is None or token is None:
        return await _signin_form(request, error="bad_login", status=401, next_path=next_path)
    raise signin_flow.redirect(request, token, next_path, user.role)


async def signout(request: web.Request) -> web.StreamResponse:
    app = request.app
    principal = principal_of(request)
    async with app[state.DB].begin() as session:
        await sessions.end(session, principal.session_id)
        audit.record(
            session, at=app[state.CLOCK].now(), actor=principal.actor, action="signout", address=request.remote
        )
    response = web.HTTPSeeOther("/signin")
    sessions.clear_cookie(response, app[state.CONFIG])
    raise response


async def overview(request: web.Request) -> web.StreamResponse:
    async with request.app[state.DB]() as session:
        rows = await views.school_rows(session, principal_of(request))
    return request.app[state.RENDERER].render(request, "overview.html", rows=rows)


async def _school(
    request: web.Request, unit_id: int, *, new_code: NewCode | None = None, error: str | None = None, status: int = 200
) -> web.Response:
    async with request.app[state.DB]() as session:
        unit = (await session.execute(select(Unit).where(Unit.id == unit_id))).scalar_one_or_none()
        if unit is None:
            raise web.HTTPNotFound()
        agents = await views.agents_of(session, [unit.id])
        cameras = [views.camera_dict(c) for c in await views.cameras_of(session, [a.id for a in agents])]
    context: dict[str, Any] = {
        "unit": unit,
        "agents": agents,
        "cameras": cameras,
        "new_code": new_code,
        "error": error,
        "public_url": request.app[state.CONFIG].effective_public_url,
    }
    return request.app[state.RENDERER].render(request, "school.html", status=status, **context)


async def school(request: web.Request) -> web.StreamResponse:
    return await _school(request, int(request.match_info["unit_id"]))


async def make_code(request: web.Request) -> web.StreamResponse:
    unit_id = int(request.match_info["unit_id"])
    try:
        code = await actions.create_enrolment_code(request.app, unit_id, principal_of(request), request.remote)
    except CodeError as exc:
        return await _school(request, unit_id, error=str(exc), status=409)
    return await _school(request, unit_id, new_code=code)


async def approve(request: web.Request) -> web.StreamResponse:
    try:
        camera = await actions.approve_camera(
            request.app, int(request.match_info["camera_id"]), principal_of(request), request.remote
        )
    except ActionError as exc:
        return _message(request, str(exc), exc.status)
    async with request.app[state.DB]() as session:
        unit_id = (await views.agents_unit(session, camera.agent_id)) or 0
    raise web.HTTPSeeOther(f"/units/{unit_id}")


async def revoke(request: web.Request) -> web.StreamResponse:
    agent_id = int(request.match_info["agent_id"])
    async with request.app[state.DB]() as session:
        unit_id = await views.agents_unit(session, agent_id)
    try:
        await actions.revoke_agent(request.app, agent_id, principal_of(request), request.remote)
    except ActionError as exc:
        return _message(request, str(exc), exc.status)
    raise web.HTTPSeeOther(f"/units/{unit_id}" if unit_id else "/")


def _message(request: web.Request, message: str, status: int) -> web.Response:
    return request.app[state.RENDERER].render(request, "message.html", status=status, message=message)


def add_routes(routes: Routes) -> None:
    routes.add("GET", "/signin", signin_page, public(Kind.PAGE))
    routes.add("POST", "/signin", signin, public(Kind.PAGE, check_origin=True))
    routes.add("POST", "/signout", signout, Policy(roles=frozenset(Role), kind=Kind.PAGE))
    routes.add("GET", "/", overview, PAGE)
    routes.add("GET", "/units/{unit_id:\\d+}", school, Policy(TECHNICIANS, Kind.PAGE, Scope.UNIT))
    routes.add("POST", "/units/{unit_id:\\d+}/enrolment-codes", make_code, Policy(TECHNICIANS, Kind.PAGE, Scope.UNIT))
    routes.add("POST", "/cameras/{camera_id:\\d+}/approve", approve, Policy(TECHNICIANS, Kind.PAGE, Scope.CAMERA))
    routes.add("POST", "/agents/{agent_id:\\d+}/revoke", revoke, Policy(ADMINS, Kind.PAGE, Scope.AGENT))
