"""The whole agent (discovery, inventory, uplink, publisher) takes live-view commands from a controller.

A small fake controller speaks protocol/uplink.py: it welcomes the agent, sends `publish_camera` for the camera
the agent discovered, and `stop_publishing`; it records the `publish_state` messages that come back. The media
node is the real one, in this process; a viewer decodes what the agent publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import WSMsgType, web

from agents.discovery.credentials import CredentialBook
from agents.inventory import Inventory
from agents.service import Agent
from protocol.camera import CameraState
from protocol.media import TokenKind
from protocol.uplink import (
    AGENT_MESSAGE,
    UPLINK_PATH,
    Hello,
    Message,
    PublishCamera,
    PublishState,
    StopPublishing,
    Welcome,
)
from rtc.aiortc_adapter import LoopbackCandidates, set_loopback_candidates
from simulator.spec import CameraSpec
from tests.agents.cameras import PASSWORD, config, running
from tests.media.node.helpers import DecodingViewer, running_node
from tests.ports import free_port
from tests.waiting import eventually, eventually_true

TOKEN = "agent-token-" + "y" * 32
HOST = "127.0.9.80"
ROOM = "cam-5"


@dataclass
class Controller:
    port: int
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    states: list[PublishState] = field(default_factory=list)

    async def uplink(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            message = AGENT_MESSAGE.validate_json(msg.data)
            if isinstance(message, Hello):
                welcome = Welcome(agent_id="a1", server_time=datetime.now(UTC), acked_seq=message.seq,
                                  status_interval_s=30)  # fmt: skip
                await ws.send_str(welcome.model_dump_json())
                self.sockets.append(ws)
            elif isinstance(message, PublishState):
                self.states.append(message)
        return ws

    async def send(self, message: Message) -> None:
        await self.sockets[-1].send_str(message.model_dump_json())


@contextlib.asynccontextmanager
async def controller() -> AsyncIterator[Controller]:
    fake = Controller(free_port())
    app = web.Application()
    app.router.add_get(UPLINK_PATH, fake.uplink)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", fake.port).start()
        yield fake
    finally:
        for ws in fake.sockets:
            await ws.close()
        await runner.cleanup()


async def test_the_agent_publishes_on_the_controller_s_command_and_stops_on_it(tmp_path: Path) -> None:
    camera = CameraSpec(name="uplink-live", host=HOST, http_port=free_port(HOST), rtsp_port=free_port(HOST),
                        password=PASSWORD)  # fmt: skip
    cfg = config(tmp_path / "agent", [HOST], networks=[f"{HOST}/32"], recording={"enabled": False},
                 live={"loopback_candidates": True})  # fmt: skip
    (tmp_path / "agent").mkdir()
    try:
        async with (
            running([camera]),
            controller() as fake,
            running_node(tmp_path) as node,
            await Inventory.open(tmp_path / "agent") as inventory,
        ):
            agent = Agent(cfg, CredentialBook.from_config(cfg), inventory, token=TOKEN,
                          controller_url=f"http://127.0.0.1:{fake.port}")  # fmt: skip
            task = asyncio.create_task(agent.run())
            viewer = DecodingViewer()
            try:
                await eventually(lambda: any(r.state is CameraState.READY for r in inventory.snapshot()), 15)
                await eventually(lambda: bool(fake.sockets), 10)
                await fake.send(
                    PublishCamera(request_id="p1", endpoint_ref=camera.endpoint_ref,
                                  whip_url=f"{node.url}/whip/{ROOM}", token=node.token(TokenKind.PUBLISH, ROOM))
                )  # fmt: skip
                await eventually(lambda: [s.state for s in fake.states] == ["publishing"], 15)
                assert (await viewer.view(node, ROOM, node.view_token(ROOM)))[0] == 201
                await eventually(lambda: viewer.decoded >= 25, 15)

                async def exported() -> bool:
                    url = f"http://127.0.0.1:{agent.health_port}/metrics"
                    async with aiohttp.ClientSession() as http, http.get(url) as response:
                        return "\nketnoi_agent_live_publications 1.0" in await response.text()

                await eventually_true(exported, timeout=5)
                await fake.send(StopPublishing(endpoint_ref=camera.endpoint_ref))
                await eventually(lambda: [s.state for s in fake.states] == ["publishing", "stopped"], 10)
                assert fake.states[-1].request_id == "p1" and fake.states[-1].bytes_sent > 0
                await eventually(lambda: node.live.load().publishers == 0, 5)
            finally:
                await viewer.close()
                agent.stop()
                await asyncio.wait_for(task, 15)
    finally:
        set_loopback_candidates(LoopbackCandidates.DEFAULT)
