"""Camera relays on a real node: a WHIP publisher, WHEP viewers that decode, DELETE, replacement, idle close."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCSessionDescription

from common.clock import ManualClock
from protocol.media import TokenKind
from tests.media.node.helpers import DecodingViewer, LoopPublisher, h264_loop, offer_of, post_sdp, running_node
from tests.waiting import eventually

ROOM = "cam-1"


@pytest.mark.parametrize("fast", [True, False], ids=["direct-send-path", "aiortc-sender"])
async def test_a_viewer_decodes_what_the_publisher_sends(tmp_path: Path, fast: bool) -> None:
    async with running_node(tmp_path, fast_send_path=fast) as node:
        publisher = LoopPublisher(await h264_loop())
        viewer = DecodingViewer()
        try:
            assert await publisher.publish(node, ROOM, node.token(TokenKind.PUBLISH, ROOM)) == 201
            status, _ = await viewer.view(node, ROOM, node.view_token(ROOM))
            assert status == 201
            await eventually(lambda: viewer.decoded >= 10, timeout=15)
            load = node.live.load()
            assert (load.relays, load.publishers, load.subscribers) == (1, 1, 1)
            assert load.view_sessions == ["live-1"]
            assert load.frames_out >= 10
        finally:
            await viewer.close()
            await publisher.close()


async def test_a_viewer_who_comes_first_sees_the_picture_when_the_publication_arrives(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        viewer = DecodingViewer()
        publisher = LoopPublisher(await h264_loop())
        try:
            assert (await viewer.view(node, ROOM, node.view_token(ROOM)))[0] == 201
            assert node.live.load().relays == 1
            assert await publisher.publish(node, ROOM, node.token(TokenKind.PUBLISH, ROOM)) == 201
            await eventually(lambda: viewer.decoded >= 10, timeout=15)
        finally:
            await viewer.close()
            await publisher.close()


async def test_a_second_publication_replaces_the_first_and_viewers_follow_it(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        loop = await h264_loop()
        first, second = LoopPublisher(loop), LoopPublisher(loop)
        viewer = DecodingViewer()
        try:
            assert await first.publish(node, ROOM, node.token(TokenKind.PUBLISH, ROOM)) == 201
            assert (await viewer.view(node, ROOM, node.view_token(ROOM)))[0] == 201
            await eventually(lambda: viewer.decoded >= 5, timeout=15)
            assert await second.publish(node, ROOM, node.token(TokenKind.PUBLISH, ROOM)) == 201
            await eventually(lambda: first.pc.connectionState == "closed", timeout=5)
            seen = viewer.decoded
            await eventually(lambda: viewer.decoded >= seen + 25, timeout=15)
            assert node.live.load().publishers == 1
        finally:
            for closing in (viewer, first, second):
                await closing.close()


async def test_delete_ends_a_viewer_or_a_publication(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node, aiohttp.ClientSession() as http:
        publisher = LoopPublisher(await h264_loop())
        viewer = DecodingViewer()
        try:
            assert await publisher.publish(node, ROOM, node.token(TokenKind.PUBLISH, ROOM)) == 201
            assert (await viewer.view(node, ROOM, node.view_token(ROOM)))[0] == 201
            await eventually(lambda: viewer.decoded >= 3, timeout=15)
            async with http.delete(node.url + viewer.location) as response:
                assert response.status == 200
            await eventually(viewer.ended.is_set, timeout=5)
            async with http.delete(node.url + viewer.location) as response:
                assert response.status == 404
            async with http.delete(node.url + publisher.location) as response:
                assert response.status == 200
            await eventually(lambda: publisher.pc.connectionState == "closed", timeout=5)
            load = node.live.load()
            assert (load.publishers, load.subscribers) == (0, 0)
            assert load.frames_out >= 3  # totals outlive the sessions
        finally:
            await viewer.close()
            await publisher.close()


async def test_the_relay_closes_after_its_idle_time_and_ends_the_publication(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_node(tmp_path, clock=clock, relay_idle_close_s=20) as node:
        publisher = LoopPublisher(await h264_loop())
        viewer = DecodingViewer()
        try:
            assert await publisher.publish(node, ROOM, node.token(TokenKind.PUBLISH, ROOM)) == 201
            assert (await viewer.view(node, ROOM, node.view_token(ROOM)))[0] == 201
            await eventually(lambda: viewer.decoded >= 3, timeout=15)
            await clock.advance(60)  # a watched relay does not close, however long
            await viewer.close()
            await eventually(lambda: node.live.load().subscribers == 0, timeout=10)
            await clock.advance(19)
            await eventually(lambda: node.live.load().relays == 1)  # still open, 1 s before its time
            assert publisher.pc.connectionState == "connected"
            await clock.advance(2)
            await eventually(lambda: publisher.pc.connectionState == "closed", timeout=5)
            assert node.live.load().relays == 0
            assert node.live.closed_relays == [(ROOM, "idle")]
        finally:
            await viewer.close()
            await publisher.close()


async def test_audio_offered_with_a_camera_is_answered_inactive(tmp_path: Path) -> None:
    """Camera relays carry video only: an audio section in a publication's or a viewer's offer is declined."""
    async with running_node(tmp_path) as node:
        publisher = LoopPublisher(await h264_loop())
        publisher.pc.addTransceiver("audio", direction="sendonly")
        viewer = DecodingViewer()
        viewer.pc.addTransceiver("audio", direction="recvonly")
        try:
            assert await publisher.publish(node, ROOM, node.token(TokenKind.PUBLISH, ROOM)) == 201
            status, answer = await viewer.view(node, ROOM, node.view_token(ROOM))
            assert status == 201
            audio = answer[answer.index("m=audio") :]
            assert "a=inactive" in audio
            assert (
                "a=inactive"
                in publisher.pc.remoteDescription.sdp[publisher.pc.remoteDescription.sdp.index("m=audio") :]
            )
            await eventually(lambda: viewer.decoded >= 5, timeout=15)
        finally:
            await viewer.close()
            await publisher.close()


async def test_a_browser_s_mdns_candidates_are_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A phone's offer names its host candidates `<uuid>.local`; the node drops them instead of waiting on
    multicast DNS (aioice would log its attempt), and the viewer still connects (from the candidates it gives)."""
    caplog.set_level(logging.INFO, logger="aioice")
    async with running_node(tmp_path) as node:
        publisher = LoopPublisher(await h264_loop())
        viewer = DecodingViewer()
        try:
            assert await publisher.publish(node, ROOM, node.token(TokenKind.PUBLISH, ROOM)) == 201
            offer = await offer_of(viewer.pc)
            mdns = "a=candidate:9 1 udp 2122260223 0f3b6c1e-5d2a-4e8b-9c7d-1a2b3c4d5e6f.local 54321 typ host\r\n"
            at = offer.index("a=candidate:")
            status, answer, _ = await post_sdp(
                f"{node.url}/whep/{ROOM}", node.view_token(ROOM), offer[:at] + mdns + offer[at:]
            )
            assert status == 201
            await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            await eventually(lambda: viewer.decoded >= 5, timeout=15)
            (entry,) = node.live.relays().values()
            (watching,) = entry.viewers.values()
            remote = watching.pc.getTransceivers()[0].receiver.transport.transport.getRemoteCandidates()
            assert remote and not any(c.ip.endswith(".local") for c in remote)
            assert ".local" not in caplog.text  # no resolution was even tried
        finally:
            await viewer.close()
            await publisher.close()
