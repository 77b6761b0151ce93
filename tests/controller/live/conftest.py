"""A live-view world on SQLite and PostgreSQL: the people world (tests/controller/people), an agent of the
school holding a real uplink WebSocket with six ready cameras, a fake media node on loopback that reports to
the controller, and the school's settings made through the API by its district technician:

- cameras 1 and 2: class Lá 1 (the parent's child An and her classmate Bình, both consenting);
- camera 3: the other class of the school; camera 4: staff-only (toilets); camera 5: not assigned;
- camera 6 belongs to another school's agent and class;
- windows Monday to Friday 07:00-17:00 Asia/Ho_Chi_Minh (the clock starts Monday 08:00 local).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, web
from sqlalchemy import select

from controller import state
from controller.db.models import AuditEntry, Camera, Unit
from controller.live.watcher import WATCHER
from controller.medianodes import MEDIA_NODES
from protocol.uplink import Welcome
from tests.controller.conftest import ORIGIN, AiohttpClient, Client, csrf_token, sign_in
from tests.controller.live.fakes import FakeNode
from tests.controller.people.conftest import People, papp, seed_people
from tests.controller.uplink_helpers import camera, connect, enrol, hello, receive
from tests.waiting import eventually

__all__ = ["papp"]

DEVICE_A, DEVICE_B, DEVICE_C = "phone-aaaaaaaa", "tablet-bbbbbbbb", "laptop-cccccccc"
WEEKDAYS = [{"weekday": d, "start": "07:00", "end": "17:00"} for d in range(5)]


@dataclass
class Live:
    people: People
    node: FakeNode
    agent_ws: ClientWebSocketResponse
    other_ws: ClientWebSocketResponse
    cameras: dict[int, int] = field(default_factory=dict)
    """n -> camera id (1..6 as in the module docstring)."""
    refs: dict[int, str] = field(default_factory=dict)


async def call(client: Client, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    token = await csrf_token(client)
    response = await client.request(method, path, json=body, headers={**ORIGIN, "X-CSRF-Token": token})
    return response.status, await response.json()


async def audits(app: web.Application, action: str) -> list[AuditEntry]:
    async with app[state.DB]() as session:
        query = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        return list((await session.execute(query)).scalars())


async def _agent(client: Client, app: web.Application, unit: int, numbers: list[int]) -> ClientWebSocketResponse:
    enrolled = await enrol(client, app, unit)
    ws = await connect(client, enrolled.token)
    await ws.send_str(hello([camera(n) for n in numbers]).model_dump_json())
    assert isinstance(await receive(ws), Welcome)
    return ws


@pytest.fixture
async def pclient(papp: web.Application, aiohttp_client: AiohttpClient) -> Client:
    """The app's client, set up after `papp` (and its PostgreSQL schema), so it stops before the schema is dropped:
    the live view's watcher and uplink clean-ups still use the database while the client shuts down."""
    return await aiohttp_client(papp)


@pytest.fixture
async def live(pclient: Client, papp: web.Application) -> AsyncIterator[Live]:
    people = await seed_people(papp)
    async with papp[state.DB].begin() as session:
        # the other school's agent reports from its own network
        other = await session.get(Unit, people.other_school)
        assert other is not None
        other.camera_networks = ["198.18.1.0/24"]
    agent_ws = await _agent(pclient, papp, people.school, [1, 2, 3, 4, 5])
    other_ws = await _agent(pclient, papp, people.other_school, [6])
    node = FakeNode("node-1", papp[MEDIA_NODES].secret)
    await node.start()
    world = Live(people, node, agent_ws, other_ws)
    async with papp[state.DB]() as session:
        for n in range(1, 7):
            ref = camera(n).endpoint_ref
            ids = list((await session.execute(select(Camera.id).where(Camera.endpoint_ref == ref))).scalars())
            world.cameras[n], world.refs[n] = ids[0], ref
    await node.send_report(pclient)

    await sign_in(pclient, people.technician)
    for n, body in (
        (1, {"class_id": people.klass, "label": "Góc chơi"}),
        (2, {"class_id": people.klass, "label": "Bàn ăn"}),
        (3, {"class_id": people.other_class}),
        (4, {"staff_only": True, "label": "Nhà vệ sinh"}),
    ):
        status, answer = await call(pclient, "PUT", f"/api/cameras/{world.cameras[n]}/live", body)
        assert status == 200, answer
    await sign_in(pclient, people.other_technician)
    status, answer = await call(
        pclient, "PUT", f"/api/cameras/{world.cameras[6]}/live", {"class_id": people.other_school_class}
    )
    assert status == 200, answer
    status, answer = await call(pclient, "PUT", f"/api/units/{people.other_school}/live/windows", {"windows": WEEKDAYS})
    assert status == 200, answer
    await sign_in(pclient, people.technician)
    status, answer = await call(pclient, "PUT", f"/api/units/{people.school}/live/windows", {"windows": WEEKDAYS})
    assert status == 200 and answer["open_now"] is True, answer
    status, _ = await call(
        pclient,
        "POST",
        f"/api/children/{people.child}/guardians",
        {"user_id": people.parent_id, "relationship": "mother"},
    )
    assert status in (200, 201)
    for child in (people.child, people.sibling):
        status, _ = await call(pclient, "POST", f"/api/children/{child}/consents", {"given_by": "Mẹ"})
        assert status in (200, 201)
    await sign_in(pclient, people.parent)
    try:
        yield world
    finally:
        await node.stop()
        await agent_ws.close()
        await other_ws.close()


async def settle(app: web.Application) -> None:
    """Wait until the watcher has run a whole pass that started after this call."""
    watcher = app[WATCHER]
    for _ in range(2):  # the first pass to end may have started before this call; the second did not
        before = watcher.passes
        watcher.wake()
        await eventually(lambda: watcher.passes > before, timeout=10)  # noqa: B023 (awaited in this iteration)
