"""Real aiortc participants through a real node: everyone receives everyone else's audio and video, forwarded
without decoding, and a subscriber's keyframe request reaches the publisher."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import pytest

from common.clock import SystemClock
from media.rooms.botpeer import BotPeer
from media.rooms.extension import MeetingSettings
from protocol.media import CloseRequest, MeetingRole
from protocol.meeting import Codec, Source
from tests.meetings.nodes import Node, meeting_node
from tests.waiting import eventually

ROOM = "meet-1-1"
KEYFRAME_MIN_INTERVAL = 0.3
"""`media.forwarding.Source`'s default."""


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
        assert node.meetings.rooms[ROOM].plane.push_errors == 0  # type: ignore[attr-defined]


async def test_an_h264_session_forwards_h264() -> None:
    settings = MeetingSettings(codec=Codec.H264)
    async with meeting_node(settings) as node:
        peers = [BotPeer(node.ws_url(ROOM), node.token(ROOM, name=n), codec=Codec.H264) for n in ("an", "binh")]
        try:
            for peer in peers:
                await peer.join()
            a, b = peers
            await eventually(
                lambda: a.frames_from(b.id, Source.CAMERA) > 10 and b.frames_from(a.id, Source.CAMERA) > 10
            )
            sources = node.meetings.rooms[ROOM].plane.sources  # type: ignore[attr-defined]
            assert {s.codec for (pid, src), s in sources.items() if src is Source.CAMERA} == {"H264"}
            assert all(s.stats.keyframes_in >= 1 for (pid, src), s in sources.items() if src is Source.CAMERA)
        finally:
            for peer in peers:
                await peer.close()


async def test_a_subscribers_keyframe_request_reaches_the_publisher() -> None:
    """Each request reaches the publisher as a PLI. The node coalesces requests within `keyframe_min_interval`
    (0.3 s), and a keyframe arriving meanwhile answers a deferred one instead of a PLI (the bots' publisher sends
    one every 2 s), so each request is made once that interval has passed since the last PLI."""
    clock = SystemClock()
    async with meeting_node(clock=clock) as node, bots(node, "an", "binh") as (publisher, subscriber):
        await eventually(lambda: subscriber.frames_from(publisher.id, Source.CAMERA) > 5, timeout=20)
        for _ in range(3):
            before = publisher.plis_received
            assert await subscriber.request_keyframe(publisher.id, Source.CAMERA)
            await eventually(lambda before=before: publisher.plis_received > before, timeout=5)  # type: ignore[misc]
            sent = clock.monotonic()
            await eventually(lambda sent=sent: clock.monotonic() - sent > KEYFRAME_MIN_INTERVAL)  # type: ignore[misc]
        live = node.meetings.rooms[ROOM]
        assert live.connections[publisher.id].member.role is MeetingRole.PARTICIPANT


@pytest.mark.slow
async def test_a_broadcast_reaches_every_school() -> None:
    """One presenter and a hundred schools watching as observers of a class."""
    async with meeting_node() as node:
        room = "meet-9-90"
        presenter = BotPeer(node.ws_url(room), node.token(room, MeetingRole.HOST, name="so", class_mode=True))
        schools = [
            BotPeer(node.ws_url(room), node.token(room, MeetingRole.OBSERVER, name=f"s{i}", class_mode=True))
            for i in range(100)
        ]
        try:
            await presenter.join()
            await asyncio.gather(*(school.join() for school in schools))
            await eventually(lambda: all(s.frames_from(presenter.id, Source.CAMERA) > 10 for s in schools), timeout=60)
            await eventually(lambda: all(s.frames_from(presenter.id, Source.MICROPHONE) > 20 for s in schools))
            await eventually(lambda: presenter.roster is not None and len(presenter.roster.participants) == 101)
            assert node.meetings.load().streams_out == 200 and node.meetings.load().publishers == 2
            assert node.meetings.rooms[room].plane.push_errors == 0  # type: ignore[attr-defined]
        finally:
            await asyncio.gather(presenter.close(), *(school.close() for school in schools))


async def test_the_nodes_traffic_totals_count_meetings_and_keep_what_leaving_participants_carried() -> None:
    """/metrics' bytes and frames in and out include meeting rooms, and only grow: a participant who leaves, and a
    room that closes, take nothing away from them."""
    async with meeting_node() as node:
        async with bots(node, "an", "binh", "chi") as peers:
            await eventually(
                lambda: all(p.frames_from(o.id, Source.CAMERA) > 10 for p in peers for o in peers if o is not p),
                timeout=20,
            )
            during = node.meetings.load()
            assert during.frames_in > 0 and during.bytes_in > 0
            assert during.frames_out >= during.frames_in, "each frame in goes to two subscribers"
            await peers[2].close()
            await eventually(lambda: node.meetings.load().subscribers == 2)
            left = node.meetings.load()
            assert left.frames_out >= during.frames_out and left.bytes_in >= during.bytes_in
        await eventually(lambda: not node.meetings.rooms)
        after = node.meetings.load()
        assert after.frames_out >= left.frames_out and after.bytes_out >= left.bytes_out
        assert after.frames_in >= left.frames_in and after.keyframe_requests >= left.keyframe_requests


async def test_the_traffic_totals_do_not_dip_while_the_controller_closes_a_room() -> None:
    """A room the controller closes leaves `rooms` at once, but its participants' connections take a while to shut
    down; meanwhile its traffic is still counted, so a scrape never sees the counters go down (Prometheus would
    take that for a restart)."""
    async with meeting_node() as node, bots(node, "an", "binh") as peers:
        await eventually(
            lambda: all(p.frames_from(o.id, Source.CAMERA) > 10 for p in peers for o in peers if o is not p)
        )
        samples = [node.meetings.load()]
        closing = asyncio.create_task(node.meetings.close(CloseRequest(rooms=[ROOM])))
        while not closing.done():  # a scrape at every turn of the event loop while the close runs
            await asyncio.sleep(0)
            samples.append(node.meetings.load())
        assert closing.result() == 1 and not node.meetings.rooms
        assert len(samples) > 2, "the close took several turns: the room was out of `rooms` before it ended"
        for earlier, later in itertools.pairwise(samples):
            assert later.frames_out >= earlier.frames_out and later.bytes_out >= earlier.bytes_out
            assert later.frames_in >= earlier.frames_in and later.bytes_in >= earlier.bytes_in
