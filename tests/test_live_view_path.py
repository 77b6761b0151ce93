"""The whole live-view path with real parts: a simulated camera (RTSP) -> the agent's publisher (real agent code)
-> a media node process (`python -m media serve`) -> a viewer: aiortc decoding frames, and headless Chromium
playing through `controller/web/static/js/whep-player.js` on a small page served here (another origin than the
node's, as the controller's parent page is).

"Upstream once" is measured at the agent: the bytes its publication sends (DTLS transport count) per byte of H.264
it reads from the camera, with 1 viewer and with 50 viewers of the same camera.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiortc import RTCSessionDescription

from agents.live.config import LiveConfig
from agents.publisher import Publication, Publisher
from protocol.media import CONTROL_CLOSE_PATH, CloseRequest, TokenKind, node_bearer
from protocol.uplink import PublishCamera, PublishState
from rtc.aiortc_adapter import LoopbackCandidates, set_loopback_candidates
from simulator.spec import CameraSpec
from tests.agents.cameras import PASSWORD, running
from tests.browser import Browser
from tests.media.node.helpers import DecodingViewer, NodeProcess, node_process, offer_of, post_sdp
from tests.ports import free_port
from tests.recording.helpers import login_for, ready_report
from tests.rtc.peers import Counter
from tests.waiting import eventually, eventually_true

ROOM = "cam-77"
PLAYER = Path(__file__).resolve().parents[1] / "controller" / "web" / "static" / "js" / "whep-player.js"


@dataclass
class Path_:
    node: NodeProcess
    publisher: Publisher
    states: list[PublishState] = field(default_factory=list)

    def publication(self) -> Publication:
        return next(iter(self.publisher.active().values()))


@contextlib.asynccontextmanager
async def live_path(tmp_path: Path, host: str, **node_settings: Any) -> AsyncIterator[Path_]:
    """Camera, node process and publishing agent, the publication up."""
    set_loopback_candidates(LoopbackCandidates.ONLY)
    camera_spec = CameraSpec(
        name=f"path-{host}", host=host, http_port=free_port(host), rtsp_port=free_port(host), password=PASSWORD
    )
    try:
        async with running([camera_spec]) as cameras, node_process(tmp_path, **node_settings) as node:
            reports = [ready_report(cameras[0])]
            states: list[PublishState] = []
            publisher = Publisher(LiveConfig(loopback_candidates=True), lambda: reports, login_for, states.append)
            task = asyncio.create_task(publisher.run())
            await publisher.started.wait()
            try:
                await publisher.publish(
                    PublishCamera(
                        request_id="r1",
                        endpoint_ref=camera_spec.endpoint_ref,
                        whip_url=f"{node.url}/whip/{ROOM}",
                        token=node.token(TokenKind.PUBLISH, ROOM),
                    )
                )
                await eventually(lambda: any(s.state == "publishing" for s in states), timeout=20)
                yield Path_(node, publisher, states)
            finally:
                publisher.shutdown()
                await asyncio.wait_for(task, 15)
    finally:
        set_loopback_candidates(LoopbackCandidates.DEFAULT)


async def test_an_aiortc_viewer_decodes_the_camera_through_the_agent_and_a_node_process(tmp_path: Path) -> None:
    async with live_path(tmp_path, "127.0.9.40") as path:
        viewer = DecodingViewer()
        try:
            token = path.node.token(TokenKind.VIEW, ROOM, session="s1", device="d1")
            status, _ = await viewer.view(path.node, ROOM, token)
            assert status == 201
            await eventually(lambda: viewer.decoded >= 50, timeout=20)  # two seconds of the camera's 25 fps
            health = await path.node.healthz()
            assert (health["relays"], health["publishers"], health["viewers"]) == (1, 1, 1)
        finally:
            await viewer.close()


PAGE = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Xem trực tiếp</title></head>
<body><video id="v"></video><p id="status">-</p>
<script src="/whep-player.js"></script>
<script src="/page.js"></script></body></html>
"""

PAGE_JS = """
window.statuses = [];
const video = document.getElementById("v");
const config = JSON.parse(decodeURIComponent(location.hash.slice(1)));
window.player = KetnoiWhep.play({
  video: video, nodeUrl: config.node, room: config.room, token: config.token, iceServers: [],
  onStatus: (s) => { window.statuses.push(s); document.getElementById("status").textContent = s.state; },
});
window.framesDecoded = async () => {
  const pc = window.player.peerConnection;
  if (!pc) { return -1; }
  let frames = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded;
  });
  return frames;
};
"""


@contextlib.asynccontextmanager
async def parent_page() -> AsyncIterator[str]:
    """A page at its own origin (as the controller's parent page is), loading the player as a file."""
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def page_js(request: web.Request) -> web.Response:
        return web.Response(text=PAGE_JS, content_type="text/javascript")

    async def player(request: web.Request) -> web.Response:
        return web.Response(text=PLAYER.read_text(encoding="utf-8"), content_type="text/javascript")

    app.router.add_get("/", page)
    app.router.add_get("/page.js", page_js)
    app.router.add_get("/whep-player.js", player)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_chromium_plays_the_camera_through_the_whep_player(tmp_path: Path) -> None:
    async with (
        parent_page() as origin,
        live_path(tmp_path, "127.0.9.41", cors_origins=[origin]) as path,
        Browser.launch(tmp_path) as b,
    ):
        page = b.page
        token = path.node.token(TokenKind.VIEW, ROOM, session="s-browser", device="phone-1")
        config = json.dumps({"node": path.node.url, "room": ROOM, "token": token})
        await page.navigate(f"{origin}/#{config}")
        await page.wait_for("#status", timeout=10, text="live")
        first = await page.evaluate("window.framesDecoded()")
        await page.wait_until(f"window.framesDecoded().then(n => n > {first} + 25)", timeout=15)
        assert await page.evaluate("document.getElementById('v').playsInline && document.getElementById('v').muted")
        assert (await path.node.healthz())["viewers"] == 1
        # Leaving deletes the session at the node.
        await page.evaluate("window.player.stop()")

        async def left() -> bool:
            return bool((await path.node.healthz())["viewers"] == 0)

        await eventually_true(left, timeout=5, interval=0.05)
        statuses = await page.evaluate("window.statuses.map(s => s.state + ':' + s.reason)")
        assert statuses == ["connecting:", "live:", "stopped:left"]


async def test_the_player_says_why_a_token_was_refused(tmp_path: Path) -> None:
    async with (
        parent_page() as origin,
        live_path(tmp_path, "127.0.9.42", cors_origins=[origin]) as path,
        Browser.launch(tmp_path) as b,
    ):
        page = b.page
        token = path.node.token(TokenKind.VIEW, ROOM, ttl_s=-1, session="s-old", device="d1")
        config = json.dumps({"node": path.node.url, "room": ROOM, "token": token})
        await page.navigate(f"{origin}/#{config}")
        await page.wait_for("#status", timeout=10, text="stopped")
        last = await page.evaluate("window.statuses[window.statuses.length - 1]")
        assert (last["reason"], last["detail"]) == ("refused", "expired")


async def _window(publication: Publication, frames: int) -> tuple[int, int, int]:
    """(wire bytes, payload bytes, packets) the publication sends while `frames` more frames go out."""
    wire0, payload0, packets0 = await publication.bytes_sent(), publication.payload_bytes, publication.packets_sent
    await eventually(lambda: publication.packets_sent >= packets0 + frames, timeout=frames / 25 * 3 + 5)
    wire1, payload1, packets1 = await publication.bytes_sent(), publication.payload_bytes, publication.packets_sent
    return wire1 - wire0, payload1 - payload0, packets1 - packets0


@pytest.mark.slow
async def test_upstream_once_the_agent_sends_the_same_bytes_for_1_and_for_50_viewers(tmp_path: Path) -> None:
    """Counted at the agent over 100 frames (two keyframe intervals): wire bytes per byte of H.264 read from the
    camera. Tolerance: the two ratios within 5 % of each other (50 copies would be 50x), both under 1.15."""
    async with live_path(tmp_path, "127.0.9.43") as path:
        publication = path.publication()
        viewers: list[Counter] = []
        try:
            for _ in range(50):
                viewers.append(Counter())
            await _join(path.node, viewers[:1])
            await eventually(lambda: len(viewers[0].frames) > 25, timeout=20)
            one = await _window(publication, 100)
            await _join(path.node, viewers[1:])
            await eventually(lambda: all(len(v.frames) > 10 for v in viewers), timeout=60)
            assert (await path.node.healthz())["viewers"] == 50
            fifty = await _window(publication, 100)
            ratio_one, ratio_fifty = one[0] / one[1], fifty[0] / fifty[1]
            print(f"upstream: 1 viewer {one[0]} B on the wire for {one[1]} B of H.264 ({ratio_one:.3f}); "
                  f"50 viewers {fifty[0]} B for {fifty[1]} B ({ratio_fifty:.3f})")  # fmt: skip
            assert ratio_one < 1.15 and ratio_fifty < 1.15
            assert abs(ratio_fifty - ratio_one) / ratio_one < 0.05
            frames_each = statistics.median(len(v.frames) for v in viewers[1:])
            assert frames_each > 10
        finally:
            for viewer in viewers:
                await viewer.pc.close()


async def _join(node: NodeProcess, viewers: list[Counter]) -> None:
    for index, viewer in enumerate(viewers):
        viewer.pc.addTransceiver("video", direction="recvonly")
        token = node.token(TokenKind.VIEW, ROOM, session=f"s-{index}", device=f"d-{index}")
        status, body, _ = await post_sdp(f"{node.url}/whep/{ROOM}", token, await offer_of(viewer.pc))
        assert status == 201, body
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))


async def test_the_player_stops_within_5_s_when_the_controller_closes_the_view(tmp_path: Path) -> None:
    async with (
        parent_page() as origin,
        live_path(tmp_path, "127.0.9.44", cors_origins=[origin]) as path,
        Browser.launch(tmp_path) as b,
    ):
        page = b.page
        token = path.node.token(TokenKind.VIEW, ROOM, session="s-revoked", device="phone-1")
        await page.navigate(f"{origin}/#{json.dumps({'node': path.node.url, 'room': ROOM, 'token': token})}")
        await page.wait_for("#status", timeout=10, text="live")
        request = CloseRequest(view_sessions=["s-revoked"], reason="guardianship revoked")
        headers = {"Authorization": f"Bearer {node_bearer(path.node.secret)}", "Content-Type": "application/json"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{path.node.url}{CONTROL_CLOSE_PATH}", data=request.model_dump_json(), headers=headers) as r,
        ):
            assert (r.status, await r.json()) == (200, {"closed": 1})
        await page.wait_for("#status", timeout=5, text="stopped")
        last = await page.evaluate("window.statuses[window.statuses.length - 1]")
        assert last["reason"] == "ended"  # the node closed DTLS; the page then asks the controller why
