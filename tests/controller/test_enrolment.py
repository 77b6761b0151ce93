"""One-time enrolment codes: shown once, stored hashed, single use, expiring, rate limited."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy import select

from common.clock import ManualClock
from controller import state
from controller.db.models import Agent, AuditEntry, EnrolmentCode
from controller.security.tokens import CODE_ALPHABET, normalize_code, sha256_hex
from protocol.uplink import ENROL_PATH, EnrolRequest, EnrolResponse
from tests.controller.conftest import ORIGIN, Client, World, sign_in
from tests.controller.uplink_helpers import new_code


async def _enrol(client: Client, code: str) -> tuple[int, dict[str, str]]:
    body = EnrolRequest(code=code, hostname="agent-1", version="0.1.0").model_dump_json()
    response = await client.post(ENROL_PATH, data=body, headers={"Content-Type": "application/json"})
    return response.status, await response.json()


async def test_technician_makes_a_code_that_works_once(client: Client, app: web.Application, world: World) -> None:
    token = await sign_in(client, world.technician)
    response = await client.post(
        f"/api/units/{world.school}/enrolment-codes", headers={**ORIGIN, "X-CSRF-Token": token}
    )
    assert response.status == 201
    made = await response.json()
    code = made["code"]
    assert len(normalize_code(code)) == 10 and set(normalize_code(code)) <= set(CODE_ALPHABET)
    async with app[state.DB]() as session:
        stored = (await session.execute(select(EnrolmentCode))).scalar_one()
    assert normalize_code(code) not in stored.code_hash and stored.used_at is None

    status, body = await _enrol(client, code.lower().replace("-", " "))  # typed loosely: still accepted
    assert status == 200
    enrolled = EnrolResponse.model_validate(body)
    async with app[state.DB]() as session:
        agent = await session.get(Agent, int(enrolled.agent_id))
        assert agent is not None and agent.unit_id == world.school
        assert agent.token_hash == sha256_hex(enrolled.token) and enrolled.token not in agent.token_hash
        actions = list((await session.execute(select(AuditEntry.action))).scalars())
    assert "enrolment_code.create" in actions and "agent.enrol" in actions

    status, body = await _enrol(client, code)
    assert status == 403 and "used already" in body["error"]


async def test_codes_for_non_schools_are_refused(client: Client, world: World) -> None:
    token = await sign_in(client, world.admin)
    response = await client.post(
        f"/api/units/{world.district}/enrolment-codes", headers={**ORIGIN, "X-CSRF-Token": token}
    )
    assert response.status == 409 and "schools" in (await response.json())["error"]


async def test_unknown_and_expired_codes_are_refused(
    client: Client, app: web.Application, world: World, clock: ManualClock
) -> None:
    status, body = await _enrol(client, "ABCDE-FGHJK")
    assert status == 403 and "not known" in body["error"]
    code = await new_code(app, world.school, lifetime_s=3600)
    await clock.advance(3601)
    status, body = await _enrol(client, code)
    assert status == 403 and "expired" in body["error"]
    short = await client.post(ENROL_PATH, data=b'{"code": "short", "hostname": "h", "version": "1"}')
    assert short.status == 400 and "code" in (await short.json())["error"]
    response = await client.post(ENROL_PATH, data=b'{"code": "ABCDEFGHJK", "extra": 1}')
    assert response.status == 400


async def test_concurrent_use_of_one_code_enrols_one_agent(client: Client, app: web.Application, world: World) -> None:
    code = await new_code(app, world.school)
    results = await asyncio.gather(*(_enrol(client, code) for _ in range(5)))
    assert sorted(status for status, _ in results) == [200, 403, 403, 403, 403]


async def test_enrolment_is_rate_limited_per_address(client: Client, world: World, clock: ManualClock) -> None:
    statuses = [(await _enrol(client, f"WRONGCODE{i}"))[0] for i in range(12)]
    assert statuses[:10] == [403] * 10 and statuses[10:] == [429, 429]
    await clock.advance(61)
    assert (await _enrol(client, "WRONGCODE0"))[0] == 403
