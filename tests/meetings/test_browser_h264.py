"""An H.264 meeting in Chromium: three headless Chromium participants join a session on a node whose one video
codec is H.264, through the join links and pages, and each decodes the others' H.264 video and hears their audio.

Debian's chromium encodes H.264 with OpenH264 and decodes it with FFmpeg (checked here, Chromium 156: getStats'
encoderImplementation "OpenH264", decoderImplementation "FFmpeg"); the page offers only what the node's aiortc
takes: packetization-mode=1 in constrained baseline (42e01f) or baseline (42001f). Bounded: one browser, three
tabs, about 15 s."""

from __future__ import annotations

from pathlib import Path

from media.rooms.extension import MeetingSettings
from media.rooms.forward import ForwardingPlane
from protocol.meeting import Codec
from tests.browser import MEDIA_FLAGS, Browser
from tests.meetings.browser_world import STATS, ServerClient, enter, hears_and_sees, keeps_coming, open_session
from tests.meetings.nodes import meeting_node

NODE_ID = "media-h264"


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
            room = next(iter(node.meetings.rooms.values()))
            assert room.room.codec is Codec.H264
            assert isinstance(room.plane, ForwardingPlane) and room.plane.stats()["frames_out"] > 0
