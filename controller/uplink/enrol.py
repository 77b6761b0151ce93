"""POST ENROL_PATH: an agent trades a one-time code for its id and token (the token is stored as sha256)."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import ValidationError

from controller import audit, state
from controller.db.models import Agent, Unit
from controller.security.tokens import new_token, sha256_hex
from controller.uplink.codes import CodeError, redeem
from protocol.uplink import EnrolRequest, EnrolResponse

logger = logging.getLogger(__name__)

MAX_BODY = 16 * 1024


async def enrol(request: web.Request) -> web.StreamResponse:
    app = request.app
    address = request.remote or "unknown"
    if not app[state.ENROL_LIMITER].allow(address):
        return web.json_response({"error": "too many enrolment attempts from this address; wait a minute"}, status=429)
    if request.content_length is not None and request.content_length > MAX_BODY:
        return web.json_response({"error": "the request body is too large"}, status=413)
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return web.json_response({"error": "the request body is too large"}, status=413)
    try:
        enrolment = EnrolRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return web.json_response({"error": f"bad enrolment request: {where}: {first['msg']}"}, status=400)
    now = app[state.CLOCK].now()
    token = new_token()
    try:
        async with app[state.DB].begin() as session:
            code = await redeem(session, app[state.SECRET_KEY], enrolment.code, now)
            unit = await session.get(Unit, code.unit_id)
            if unit is None:
                raise CodeError("the school of this code no longer exists")
            agent = Agent(
                unit_id=unit.id,
                token_hash=sha256_hex(token),
                hostname=enrolment.hostname,
                version=enrolment.version,
                enrolled_at=now,
                online=False,
                last_seq=0,
            )
            session.add(agent)
            await session.flush()
            code.agent_id = agent.id
            audit.record(
                session,
                at=now,
                actor=f"agent:{agent.id}",
                action="agent.enrol",
                target=f"unit:{unit.id}",
                details={"hostname": enrolment.hostname, "version": enrolment.version},
                address=address,
            )
            response = EnrolResponse(agent_id=str(agent.id), site_id=str(unit.id), site_name=unit.name, token=token)
    except CodeError as exc:
        logger.info("enrolment refused from %s: %s", address, exc)
        return web.json_response({"error": str(exc)}, status=403)
    logger.info("agent %s enrolled for unit %s (host %s)", response.agent_id, response.site_id, enrolment.hostname)
    return web.json_response(text=response.model_dump_json())
