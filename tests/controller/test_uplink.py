"""The agent uplink end to end: a raw WebSocket client speaking protocol/uplink.py to a real controller."""

from __future__ import annotations

import contextlib

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from common.clock import ManualClock
from controller import state
from controller.db.models import Agent, Camera
from controller.uplink.sweeper import sweep
from protocol.camera import CameraState
from protocol.uplink import (
    MAX_FRAME_BYTES,
    Ack,
    ApproveCamera,
    CameraUpdate,
    Error,
    Status,
    Welcome,
)
from tests.controller.conftest import ORIGIN, Client, World, sign_in
from tests.controller.uplink_helpers import T0, camera, connect, enrol, hello, receive, send, until


async def _agent(app: web.Application, agent_id: int) -> Agent:
    async with app[state.DB]() as session:
        agent = await session.get(Agent, agent_id)
        assert agent is not None
        return agent


async def _cameras(app: web.Application, agent_id: int) -> dict[str, Camera]:
    async with app[state.DB]() as session:
        rows = (await session.execute(select(Camera).where(Camera.agent_id == agent_id))).scalars()
        return {row.endpoint_ref: row for row in rows}


async def _online(app: web.Application, agent_id: int) -> bool:
    return (await _agent(app, agent_id)).online


async def _offline(app: web.Application, agent_id: int) -> bool:
    return app[state.HUB].get(agent_id) is None and not await _online(app, agent_id)


async def test_hello_welcome_updates_acks_and_no_duplicates(client: Client, app: web.Application, world: World) -> None:
    enrolled = await enrol(client, app, world.school)
    agent_id = int(enrolled.agent_id)
    assert enrolled.site_id == str(world.school) and enrolled.site_name == "Mầm non <b>Hoa Sen</b>"
    ws = await connect(client, enrolled.token)
    await send(ws, hello([camera(1), camera(2)]))
    welcome = await receive(ws)
    assert isinstance(welcome, Welcome)
    assert welcome.agent_id == enrolled.agent_id and welcome.acked_seq == 0 and welcome.status_interval_s == 5.0
    assert welcome.approved == []
    assert await _online(app, agent_id)
    stored = await _cameras(app, agent_id)
    assert {c.state for c in stored.values()} == {CameraState.READY} and len(stored) == 2

    down = camera(1, CameraState.UNREACHABLE, "no answer within 2 s")
    await send(ws, CameraUpdate(seq=1, at=T0, camera=down))
    assert await receive(ws) == Ack(seq=1)
    back = camera(1, CameraState.READY, "answered again")
    await send(ws, CameraUpdate(seq=2, at=T0, camera=back))
    assert await receive(ws) == Ack(seq=2)
    await send(ws, CameraUpdate(seq=1, at=T0, camera=down))  # a replay: acknowledged, not applied
    assert await receive(ws) == Ack(seq=1)
    ref = camera(1).endpoint_ref
    assert (await _cameras(app, agent_id))[ref].reason == "answered again"
    assert (await _agent(app, agent_id)).last_seq == 2
    await send(ws, Status(at=T0, uptime_s=5, cameras_by_state={"ready": 2}))
    await ws.close()
    await until(lambda: _offline(app, agent_id))

    # Reconnect: the agent never saw ack 2, so it replays update 2 after its hello.
    ws = await connect(client, enrolled.token)
    await send(ws, hello([camera(1, CameraState.READY, "answered again"), camera(3)], seq=2))
    welcome = await receive(ws)
    assert isinstance(welcome, Welcome) and welcome.acked_seq == 2
    await send(ws, CameraUpdate(seq=2, at=T0, camera=down))
    assert await receive(ws) == Ack(seq=2)
    cameras = await _cameras(app, agent_id)
    assert cameras[ref].state is CameraState.READY
    assert len(cameras) == 3
    assert cameras[camera(2).endpoint_ref].gone_at is not None  # missing from the snapshot: kept, marked gone
    assert cameras[camera(3).endpoint_ref].gone_at is None
    await ws.close()


async def test_bad_tokens_are_refused_before_the_upgrade(client: Client, app: web.Application, world: World) -> None:
    enrolled = await enrol(client, app, world.school)
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {enrolled.token}"}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/api/agents/uplink", headers=headers)
        assert refused.value.status == 401


async def test_wrong_version_and_wrong_first_message_are_fatal(
    client: Client, app: web.Application, world: World
) -> None:
    enrolled = await enrol(client, app, world.school)
    ws = await connect(client, enrolled.token)
    await send(ws, hello([], version=99))
    error = await receive(ws)
    assert isinstance(error, Error) and error.fatal and "version 99" in error.message
    assert await receive(ws) is None and ws.closed
    ws = await connect(client, enrolled.token)
    await send(ws, Status(at=T0, uptime_s=1))
    error = await receive(ws)
    assert isinstance(error, Error) and error.fatal and "hello" in error.message
    assert await receive(ws) is None


async def test_oversize_frame_closes_the_link(client: Client, app: web.Application, world: World) -> None:
    enrolled = await enrol(client, app, world.school)
    ws = await connect(client, enrolled.token)
    await send(ws, hello([]))
    assert isinstance(await receive(ws), Welcome)
    # The controller may close as soon as it reads the frame header, before the client has sent it all.
    with contextlib.suppress(ConnectionError):
        await ws.send_str("x" * (MAX_FRAME_BYTES + 1))
    assert await receive(ws) is None
    assert ws.close_code in (aiohttp.WSCloseCode.MESSAGE_TOO_BIG, aiohttp.WSCloseCode.ABNORMAL_CLOSURE)
    await until(lambda: _offline(app, int(enrolled.agent_id)))


async def test_malformed_messages_get_errors_then_the_link_closes(
    client: Client, app: web.Application, world: World
) -> None:
    enrolled = await enrol(client, app, world.school)
    ws = await connect(client, enrolled.token)
    await send(ws, hello([]))
    assert isinstance(await receive(ws), Welcome)
    await ws.send_str('{"type": "camera_update", "seq": 0}')
    first = await receive(ws)
    assert isinstance(first, Error) and not first.fatal and "malformed" in first.message
    await ws.send_str("not json")
    assert isinstance(await receive(ws), Error)
    # A report carrying credentials in a URL is refused by the protocol model.
    leaky = camera(1).model_dump(mode="json")
    leaky["snapshot_uri"] = "http://admin:hunter2@198.18.1.11/snap.jpg"
    await ws.send_json({"type": "camera_update", "seq": 5, "at": T0.isoformat(), "camera": leaky})
    last = await receive(ws)
    assert isinstance(last, Error) and last.fatal and "hunter2" not in last.message
    assert await receive(ws) is None
    assert (await _agent(app, int(enrolled.agent_id))).last_seq == 0


async def test_message_flood_closes_the_link(world: World, client: Client, app: web.Application) -> None:
    enrolled = await enrol(client, app, world.school)
    ws = await connect(client, enrolled.token)
    await send(ws, hello([]))
    assert isinstance(await receive(ws), Welcome)
    status = Status(at=T0, uptime_s=1).model_dump_json()
    for _ in range(app[state.CONFIG].uplink_message_burst + 1):  # the manual clock does not refill the bucket
        await ws.send_str(status)
    error = await receive(ws)
    assert isinstance(error, Error) and error.fatal and "too many" in error.message


async def test_second_connection_replaces_the_first(client: Client, app: web.Application, world: World) -> None:
    enrolled = await enrol(client, app, world.school)
    agent_id = int(enrolled.agent_id)
    first = await connect(client, enrolled.token)
    await send(first, hello([camera(1)]))
    assert isinstance(await receive(first), Welcome)
    second = await connect(client, enrolled.token)
    error = await receive(first)
    assert isinstance(error, Error) and error.fatal and "replaced" in error.message
    assert await receive(first) is None
    await send(second, hello([camera(1)]))
    assert isinstance(await receive(second), Welcome)
    assert await _online(app, agent_id)
    await second.close()
    await until(lambda: _offline(app, agent_id))


async def test_silent_agent_goes_offline_after_the_timeout(
    client: Client, app: web.Application, world: World, clock: ManualClock
) -> None:
    enrolled = await enrol(client, app, world.school)
    agent_id = int(enrolled.agent_id)
    ws = await connect(client, enrolled.token)
    await send(ws, hello([]))
    assert isinstance(await receive(ws), Welcome)
    assert await sweep(app) == []  # not silent yet
    assert await _online(app, agent_id)
    await clock.advance(61)  # 61 s of silence > the 60 s offline timeout; this also ends the sweeper's sleep
    error = await receive(ws)
    assert isinstance(error, Error) and error.fatal
    await until(lambda: _offline(app, agent_id))


async def test_approval_reaches_the_agent_and_the_next_welcome(
    client: Client, app: web.Application, world: World
) -> None:
    enrolled = await enrol(client, app, world.school)
    outsider = camera(7, CameraState.PENDING_APPROVAL, "outside the site's camera networks", address="10.9.9.9")
    ws = await connect(client, enrolled.token)
    await send(ws, hello([camera(1), outsider]))
    assert isinstance(await receive(ws), Welcome)
    token = await sign_in(client, world.technician)
    cameras = await (await client.get(f"/api/agents/{enrolled.agent_id}/cameras")).json()
    ids = {c["endpoint_ref"]: c["id"] for c in cameras["cameras"]}
    headers = {**ORIGIN, "X-CSRF-Token": token}
    ready = await client.post(f"/api/cameras/{ids[camera(1).endpoint_ref]}/approve", headers=headers)
    assert ready.status == 409 and "pending approval" in (await ready.json())["error"]
    approved = await client.post(f"/api/cameras/{ids[outsider.endpoint_ref]}/approve", headers=headers)
    assert approved.status == 200 and (await approved.json())["approved"] is True
    assert await receive(ws) == ApproveCamera(endpoint_ref=outsider.endpoint_ref)
    again = await client.post(f"/api/cameras/{ids[outsider.endpoint_ref]}/approve", headers=headers)
    assert again.status == 409
    await ws.close()
    ws = await connect(client, enrolled.token)
    await send(ws, hello([camera(1), outsider]))
    welcome = await receive(ws)
    assert isinstance(welcome, Welcome) and welcome.approved == [outsider.endpoint_ref]
    await ws.close()


async def test_revoking_an_agent_closes_it_and_refuses_its_token(
    client: Client, app: web.Application, world: World
) -> None:
    enrolled = await enrol(client, app, world.school)
    ws = await connect(client, enrolled.token)
    await send(ws, hello([]))
    assert isinstance(await receive(ws), Welcome)
    token = await sign_in(client, world.technician)
    headers = {**ORIGIN, "X-CSRF-Token": token}
    refused = await client.post(f"/api/agents/{enrolled.agent_id}/revoke", headers=headers)
    assert refused.status == 403  # revoking is for administrators
    token = await sign_in(client, world.admin)
    headers = {**ORIGIN, "X-CSRF-Token": token}
    revoked = await client.post(f"/api/agents/{enrolled.agent_id}/revoke", headers=headers)
    assert revoked.status == 200
    error = await receive(ws)
    assert isinstance(error, Error) and error.fatal and "revoked" in error.message
    assert await receive(ws) is None
    with pytest.raises(aiohttp.WSServerHandshakeError) as again:
        await connect(client, enrolled.token)
    assert again.value.status == 401
