"""Real aiortc participants through a real node: everyone receives everyone else's audio and video, forwarded
without decoding, and a subscriber's keyframe request reaches the publisher."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from media.rooms.botpeer import BotPeer
from protocol.media import MeetingRole
from protocol.meeting import Source
from tests.meetings.nodes import Node, meeting_node
from tests.waiting import eventually

ROOM = "meet-1-1"


@contextlib.asynccontextmanager
async def bots(node: Node, *names: str) -> AsyncIterator[list[BotPeer]]:
    peers = [BotPeer(node.ws_url(ROOM), node.token(ROOM, name=name)) for name in names]
    try:
        for peer in peers:
            await peer.join()
        yield peers
    finally:
        for peer in peers:
            await peer.close()


async def test_three_participants_receive_each_others_audio_and_video() -> None:
    async with meeting_node() as node, bots(node, "an", "binh", "chi") as peers:
        for peer in peers:
            others = [p for p in peers if p is not peer]

            def everything(peer: BotPeer = peer, others: list[BotPeer] = others) -> bool:
                return all(
                    peer.frames_from(o.id, Source.CAMERA) > 10 and peer.frames_from(o.id, Source.MICROPHONE) > 20
                    for o in others
                )

            await eventually(everything, timeout=20)
        # and it keeps flowing
        first = peers[0]
        before = first.frames_from(peers[1].id, Source.CAMERA)
        await eventually(lambda: first.frames_from(peers[1].id, Source.CAMERA) > before + 10, timeout=10)
        assert not any(peer.errors for peer in peers)


async def test_a_subscribers_keyframe_request_reaches_the_publisher() -> None:
    async with meeting_node() as node, bots(node, "an", "binh") as (publisher, subscriber):
        await eventually(lambda: subscriber.frames_from(publisher.id, Source.CAMERA) > 5, timeout=20)
        for _ in range(3):
            before = publisher.plis_received
            assert await subscriber.request_keyframe(publisher.id, Source.CAMERA)
            await eventually(lambda before=before: publisher.plis_received > before, timeout=5)  # type: ignore[misc]
        live = node.meetings.rooms[ROOM]
        assert live.connections[publisher.id].member.role is MeetingRole.PARTICIPANT
