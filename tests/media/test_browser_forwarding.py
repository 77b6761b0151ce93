"""Headless Chromium as a subscriber of the forwarding core, on both send paths: it decodes the forwarded H.264
(framesDecoded keeps growing), and its keyframe requests reach the publisher through the node."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from common.clock import SystemClock
from media.forwarding import Sink, Source
from media.peers import add_direct_sink, add_sink, source_from_track
from rtc import aiortc_adapter as adapter
from rtc.aiortc_adapter import VideoCodec
from rtc.packet_track import PacketTrack
from tests.browser import Browser
from tests.media.test_forwarding_peers import vp8_frames
from tests.ports import free_port
from tests.rtc.peers import Publisher, h264_loop, loopback_only, negotiate, peer
from tests.waiting import eventually

PAGE = """<!doctype html><meta charset="utf-8"><video id="v" autoplay muted playsinline></video><script>
window.start = async (path, codec) => {
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.ontrack = (e) => { document.getElementById("v").srcObject = new MediaStream([e.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((ok) => {
    if (pc.iceGatheringState === "complete") return ok();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && ok();
  });
  const answer = await fetch("/view?path=" + path + "&codec=" + codec, {method: "POST", body: pc.localDescription.sdp});
  await pc.setRemoteDescription({type: "answer", sdp: await answer.text()});
};
window.inbound = async () => {
  let out = null;
  (await window.pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") out = s; });
  return out ? {decoded: out.framesDecoded || 0, plis: out.pliCount || 0, firs: out.firCount || 0} : null;
};
</script>"""


@pytest.fixture(autouse=True)
def loopback() -> Iterator[None]:
    with loopback_only():
        yield


class Node:
    def __init__(self) -> None:
        self.clock = SystemClock()
        self.pc = peer()
        self.source: Source | None = None
        self.viewers: list[RTCPeerConnection] = []
        self.sinks: list[Sink] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.source, _ = source_from_track(self.pc, track, name="cam-b", clock=self.clock)

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def view(self, request: web.Request) -> web.Response:
        assert self.source is not None
        pc = peer()
        self.viewers.append(pc)
        # Chromium hides its host addresses behind mDNS names; a server cannot resolve those (aioice would try, on
        # a lock bound to the first test's event loop): connectivity comes from Chromium's checks instead.
        offer = "\r\n".join(line for line in (await request.text()).splitlines() if ".local " not in line) + "\r\n"
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        codec = VideoCodec(request.query["codec"])
        if request.query["path"] == "direct":
            sink = add_direct_sink(
                pc, lambda out: Sink("chromium", "video", clock=self.clock, output=out), video_codec=codec
            )
        else:
            sink = Sink("chromium", "video", clock=self.clock)
            add_sink(pc, sink, video_codec=codec)
        sink.point(self.source)
        self.sinks.append(sink)
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(text=pc.localDescription.sdp, content_type="application/sdp")


class VP8Publisher(Publisher):
    """The same publisher with a VP8 loop (its frames are encoded here once, a keyframe every 10)."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.pc = peer()
        self.track = PacketTrack("video")
        self.sent = []
        self.plis = 0
        self.index = 0
        transceiver = self.pc.addTransceiver(self.track, direction="sendonly")
        adapter.force_codecs(transceiver, VideoCodec.VP8)

        def counted() -> None:
            self.plis += 1

        adapter.intercept_keyframe_requests(transceiver.sender, counted)

    def push_frame(self) -> bytes:
        data = self.frames[self.index % len(self.frames)]
        assert self.track.push(data, self.index * 3600)
        self.sent.append(data)
        self.index += 1
        return data


@contextlib.asynccontextmanager
async def serving(node: Node) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/", node.page)
    app.router.add_post("/view", node.view)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@pytest.mark.slow
@pytest.mark.parametrize("path", ["stock", "direct"])
@pytest.mark.parametrize("codec", ["H264", "VP8"])
async def test_chromium_decodes_forwarded_video_and_its_keyframe_requests_reach_the_publisher(
    tmp_path: Path, path: str, codec: str
) -> None:
    publisher = Publisher(await h264_loop()) if codec == "H264" else VP8Publisher(vp8_frames(50))
    node = Node()
    pacing: asyncio.Task[None] | None = None
    try:
        await negotiate(publisher.pc, node.pc)
        await eventually(lambda: node.source is not None and node.pc.connectionState == "connected")
        pacing = asyncio.ensure_future(publisher.run())
        async with serving(node) as url, Browser.launch(tmp_path) as browser:
            page = browser.page
            await page.navigate(url)
            await page.wait_until("typeof window.start === 'function'")
            await page.evaluate(f"window.start({path!r}, {codec!r})")
            await page.wait_until("window.inbound().then((s) => s && s.decoded > 30)", timeout=20)
            first = await page.evaluate("window.inbound()")
            await page.wait_until(f"window.inbound().then((s) => s.decoded > {first['decoded'] + 25})", timeout=10)
            stats = await page.evaluate("window.inbound()")
            sink = node.sinks[0]
            # Chromium asks for a keyframe of its own accord at times; whatever it sent reached the sink.
            await eventually(lambda: sink.stats.keyframe_requests >= stats["plis"] + stats["firs"])
        assert sink.stats.drops == 0 and sink.stats.frames_out > 55
        if sink.stats.keyframe_requests:
            await eventually(lambda: publisher.plis >= 1)
    finally:
        if pacing is not None:
            pacing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pacing
        if node.source is not None:
            await node.source.close()
        for pc in [publisher.pc, node.pc, *node.viewers]:
            await pc.close()
