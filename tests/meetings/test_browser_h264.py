"""An H.264 meeting in Chromium: three headless Chromium participants join a session on a node whose one video
codec is H.264, through the join links and pages, and each decodes the others' H.264 video and hears their audio.

Debian's chromium encodes H.264 with OpenH264 and decodes it with FFmpeg (checked here, Chromium 156: getStats'
encoderImplementation "OpenH264", decoderImplementation "FFmpeg"); the page offers only what the node's aiortc
takes: packetization-mode=1 in constrained baseline (42e01f) or baseline (42001f). A page whose browser lacks it
says so and leaves. Bounded: one browser, four tabs, about 15 s."""

from __future__ import annotations

from pathlib import Path

from media.rooms.extension import MeetingSettings
from media.rooms.forward import ForwardingPlane
from protocol.meeting import Codec
from tests.browser import MEDIA_FLAGS, Browser
from tests.meetings.browser_world import STATS, ServerClient, enter, hears_and_sees, keeps_coming, open_session
from tests.meetings.nodes import meeting_node

NODE_ID = "media-h264"
WITHOUT_H264 = """for (const side of [RTCRtpSender, RTCRtpReceiver]) {
  const stock = side.getCapabilities.bind(side);
  side.getCapabilities = (kind) => {
    const caps = stock(kind);
    return caps && { ...caps, codecs: caps.codecs.filter((c) => c.mimeType !== "video/H264") };
  };
}"""


async def test_three_browsers_meet_in_h264(aiohttp_client: ServerClient, tmp_path: Path) -> None:
    world = await open_session(aiohttp_client, tmp_path)
    settings = MeetingSettings(codec=Codec.H264)
    async with meeting_node(settings, secret=world.secret, node_id=NODE_ID) as node:
        world.report(node, NODE_ID)
        async with Browser.launch(tmp_path, extra_flags=MEDIA_FLAGS) as browser:
            pages = [browser.page, await browser.new_page(), await browser.new_page()]
            ids = [await enter(page, url, name) for page, url, name in zip(pages, world.urls, "ABC", strict=True)]
            assert len(set(ids)) == 3
            for page, me in zip(pages, ids, strict=True):
                assert await page.evaluate("window.ketnoiMeeting.welcome.codec") == "H264"
                others = [i for i in ids if i != me]
                await hears_and_sees(page, others)
                for other in others:
                    await keeps_coming(page, other)
                report = await page.evaluate(STATS)
                videos = [s for s in report["inbound"] if s["kind"] == "video" and s["framesDecoded"] > 0]
                assert {s["participant"] for s in videos} == set(others)
                assert {s["codec"] for s in videos} == {"video/H264"}, videos
                sent = [s for s in report["outbound"] if s["kind"] == "video"]
                assert [s["codec"] for s in sent] == ["video/H264"] and sent[0]["framesEncoded"] > 0, sent
                assert sent[0]["encoder"] == "OpenH264", sent
            # A browser without H.264 (simulated: this tab's capabilities leave it out, as a browser built without
            # OpenH264 would) is told so plainly and leaves, instead of showing black tiles.
            plain = await browser.new_page()
            await plain.send("Page.addScriptToEvaluateOnNewDocument", {"source": WITHOUT_H264})
            await plain.navigate(world.urls[1])
            await plain.wait_for("#join")
            await plain.wait_until("document.querySelector('#mic-select').options.length > 0", timeout=15)
            await plain.click("#join")
            await plain.wait_until("document.getElementById('meeting').dataset.closed === 'codec'", timeout=20)
            assert "H264" in await plain.text("#notice") and "trình duyệt" in (await plain.text("#notice")).lower()
            assert await plain.evaluate("window.ketnoiMeeting.retryTimer") is None
            await pages[0].wait_until("window.ketnoiMeeting.roster.length === 3", timeout=10)
            room = next(iter(node.meetings.rooms.values()))
            assert room.room.codec is Codec.H264
            assert isinstance(room.plane, ForwardingPlane) and room.plane.traffic().frames_out > 0
