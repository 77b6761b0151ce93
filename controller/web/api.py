"""The technician's JSON API under /api. Errors are {"error": "..."} with a 4xx status."""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import select

from controller import state
from controller.db.models import Agent, Role, Unit
from controller.security.access import ADMINS, TECHNICIANS, Kind, Policy, Routes, Scope, principal_of, public
from controller.uplink import actions
from controller.uplink.actions import ActionError
from controller.uplink.codes import CodeError
from controller.uplink.enrol import enrol
from controller.uplink.server import uplink
from controller.web import views
from controller.web.errors import error
from protocol.uplink import ENROL_PATH, UPLINK_PATH

logger = logging.getLogger(__name__)


async def list_units(request: web.Request) -> web.StreamResponse:
    async with request.app[state.DB]() as session:
        units = await views.visible_units(session, principal_of(request))
    return web.json_response({"units": [views.unit_dict(unit) for unit in units]})


async def get_unit(request: web.Request) -> web.StreamResponse:
    async with request.app[state.DB]() as session:
        unit = await session.get(Unit, int(request.match_info["unit_id"]))
        if unit is None:
            return error(404, "no such unit")
        return web.json_response(views.unit_dict(unit))


async def unit_agents(request: web.Request) -> web.StreamResponse:
    unit_id = int(request.match_info["unit_id"])
    async with request.app[state.DB]() as session:
        if await session.get(Unit, unit_id) is None:
            return error(404, "no such unit")
        agents = await views.agents_of(session, [unit_id])
    return web.json_response({"agents": [views.agent_dict(agent) for agent in agents]})


async def get_agent(request: web.Request) -> web.StreamResponse:
    async with request.app[state.DB]() as session:
        agent = (
            await session.execute(select(Agent).where(Agent.id == int(request.match_info["agent_id"])))
        ).scalar_one_or_none()
    if agent is None:
        return error(404, "no such agent")
    return web.json_response(views.agent_dict(agent))


async def agent_cameras(request: web.Request) -> web.StreamResponse:
    agent_id = int(request.match_info["agent_id"])
    async with request.app[state.DB]() as session:
        cameras = await views.cameras_of(session, [agent_id])
    return web.json_response({"cameras": [views.camera_dict(camera) for camera in cameras]})


async def make_code(request: web.Request) -> web.StreamResponse:
    unit_id = int(request.match_info["unit_id"])
    try:
        code = await actions.create_enrolment_code(request.app, unit_id, principal_of(request), request.remote)
    except CodeError as exc:
        return error(409, str(exc))
    return web.json_response(
        {"code": code.code, "unit_id": code.unit_id, "expires_at": code.expires_at.isoformat()}, status=201
    )


async def approve(request: web.Request) -> web.StreamResponse:
    try:
        camera = await actions.approve_camera(
            request.app, int(request.match_info["camera_id"]), principal_of(request), request.remote
        )
    except ActionError as exc:
        return error(exc.status, str(exc))
    return web.json_response(views.camera_dict(camera))


async def revoke(request: web.Request) -> web.StreamResponse:
    try:
        await actions.revoke_agent(
            request.app, int(request.match_info["agent_id"]), principal_of(request), request.remote
        )
    except ActionError as exc:
        return error(exc.status, str(exc))
    return web.json_response({"revoked": True})


async def whoami(request: web.Request) -> web.StreamResponse:
    """The caller and the CSRF token that scripts using a cookie session send in X-CSRF-Token."""
    principal = principal_of(request)
    return web.json_response(
        {
            "username": principal.username,
            "role": principal.role.value,
            "unit_id": principal.unit_id,
            "csrf_token": principal.csrf_token,
        }
    )


def add_routes(routes: Routes) -> None:
    routes.add("GET", "/api/session", whoami, Policy(frozenset(Role)))
    routes.add("GET", "/api/units", list_units, Policy(TECHNICIANS))
    routes.add("GET", "/api/units/{unit_id:\\d+}", get_unit, Policy(TECHNICIANS, Kind.API, Scope.UNIT))
    routes.add("GET", "/api/units/{unit_id:\\d+}/agents", unit_agents, Policy(TECHNICIANS, Kind.API, Scope.UNIT))
    routes.add(
        "POST", "/api/units/{unit_id:\\d+}/enrolment-codes", make_code, Policy(TECHNICIANS, Kind.API, Scope.UNIT)
    )
    routes.add("GET", "/api/agents/{agent_id:\\d+}", get_agent, Policy(TECHNICIANS, Kind.API, Scope.AGENT))
    routes.add("GET", "/api/agents/{agent_id:\\d+}/cameras", agent_cameras, Policy(TECHNICIANS, Kind.API, Scope.AGENT))
    routes.add("POST", "/api/agents/{agent_id:\\d+}/revoke", revoke, Policy(ADMINS, Kind.API, Scope.AGENT))
    routes.add("POST", "/api/cameras/{camera_id:\\d+}/approve", approve, Policy(TECHNICIANS, Kind.API, Scope.CAMERA))
    # Agents authenticate by one-time code (enrolment) and by their token (uplink), not by a session.
    routes.add("POST", ENROL_PATH, enrol, public())
    routes.add("GET", UPLINK_PATH, uplink, public())
