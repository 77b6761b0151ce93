"""The controller on PostgreSQL (asyncpg): enrolment, the uplink and the pages, in a schema of the test's own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from common.clock import ManualClock
from controller import state
from controller.app import build_app
from controller.db.models import Camera
from controller.security.passwords import Passwords, cheap_hasher
from protocol.camera import CameraState
from protocol.uplink import Ack, CameraUpdate, EnrolRequest, Welcome
from tests.controller.conftest import POSTGRES_URL, AiohttpClient, make_config, seed, sign_in
from tests.controller.uplink_helpers import T0, camera, connect, enrol, hello, new_code, receive, send, until

pytestmark = pytest.mark.postgres


async def test_uplink_and_pages_on_postgresql(
    pg_schema: str, aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock
) -> None:
    config = make_config(tmp_path, database_url=POSTGRES_URL, database_schema=pg_schema)
    app = build_app(config, clock=clock, passwords=Passwords(cheap_hasher()), secret_key=b"p" * 32)
    client = await aiohttp_client(app)
    world = await seed(app)

    code = await new_code(app, world.school)
    body = EnrolRequest(code=code, hostname="h", version="1").model_dump_json()
    statuses = await asyncio.gather(*(client.post("/api/agents/enrol", data=body) for _ in range(4)))
    assert sorted(r.status for r in statuses) == [200, 403, 403, 403]

    enrolled = await enrol(client, app, world.school)
    ws = await connect(client, enrolled.token)
    await send(ws, hello([camera(1), camera(2)]))
    assert isinstance(await receive(ws), Welcome)
    await send(ws, CameraUpdate(seq=1, at=T0, camera=camera(1, CameraState.UNREACHABLE, "gone quiet")))
    assert await receive(ws) == Ack(seq=1)
    await send(ws, CameraUpdate(seq=1, at=T0, camera=camera(1, CameraState.READY, "replayed")))
    assert await receive(ws) == Ack(seq=1)
    async with app[state.DB]() as session:
        states = {c.endpoint_ref: c for c in (await session.execute(select(Camera))).scalars()}
    first = states[camera(1).endpoint_ref]
    assert first.state is CameraState.UNREACHABLE and first.first_seen == T0.replace(second=1)

    await sign_in(client, world.technician)
    page = await (await client.get(f"/units/{world.school}")).text()
    assert "Trực tuyến" in page and "Không truy cập được" in page
    await ws.close()

    async def offline() -> bool:
        data = await (await client.get(f"/api/agents/{enrolled.agent_id}")).json()
        return data["online"] is False

    await until(offline)
