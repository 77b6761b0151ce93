"""What technicians do to agents and cameras: enrolment codes, approving a camera, revoking an agent.

Pages and the JSON API both call these, so the checks, the audit entries and the messages to agents are the
same whichever way a technician acts.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import select

from controller import audit, state
from controller.db.models import Agent, Camera
from controller.security.sessions import Principal
from controller.uplink.codes import NewCode, make_code
from controller.uplink.server import close_for
from protocol.camera import CameraState
from protocol.uplink import ApproveCamera

logger = logging.getLogger(__name__)


class ActionError(ValueError):
    """The action cannot be done; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


async def create_enrolment_code(app: web.Application, unit_id: int, who: Principal, address: str | None) -> NewCode:
    now = app[state.CLOCK].now()
    async with app[state.DB].begin() as session:
        code = await make_code(
            session,
            app[state.SECRET_KEY],
            unit_id=unit_id,
            now=now,
            lifetime_s=app[state.CONFIG].enrolment_code_lifetime_s,
            created_by=who.user_id,
        )
        audit.record(
            session,
            at=now,
            actor=who.actor,
            action="enrolment_code.create",
            target=f"unit:{unit_id}",
            details={"expires_at": code.expires_at.isoformat()},
            address=address,
        )
    return code


async def approve_camera(app: web.Application, camera_id: int, who: Principal, address: str | None) -> Camera:
    now = app[state.CLOCK].now()
    async with app[state.DB].begin() as session:
        camera = (await session.execute(select(Camera).where(Camera.id == camera_id))).scalar_one_or_none()
        if camera is None:
            raise ActionError("no such camera", 404)
        if camera.approved:
            raise ActionError("this camera is approved already")
        if camera.state is not CameraState.PENDING_APPROVAL:
            raise ActionError("only a camera pending approval can be approved")
        camera.approved = True
        camera.approved_at = now
        camera.approved_by = who.user_id
        audit.record(
            session,
            at=now,
            actor=who.actor,
            action="camera.approve",
            target=f"camera:{camera.id}",
            details={"agent_id": camera.agent_id, "endpoint_ref": camera.endpoint_ref, "address": camera.address},
            address=address,
        )
    connection = app[state.HUB].get(camera.agent_id)
    if connection is not None:
        await connection.send(ApproveCamera(endpoint_ref=camera.endpoint_ref))
    return camera


async def revoke_agent(app: web.Application, agent_id: int, who: Principal, address: str | None) -> None:
    now = app[state.CLOCK].now()
    async with app[state.DB].begin() as session:
        agent = (await session.execute(select(Agent).where(Agent.id == agent_id))).scalar_one_or_none()
        if agent is None:
            raise ActionError("no such agent", 404)
        if agent.revoked_at is not None:
            raise ActionError("this agent is revoked already")
        agent.revoked_at = now
        agent.online = False
        audit.record(
            session, at=now, actor=who.actor, action="agent.revoke", target=f"agent:{agent_id}", address=address
        )
    await close_for(app, agent_id, "this agent has been revoked")
