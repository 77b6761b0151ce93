"""The forwarding core's rules, with a fake output in place of a subscriber's sender and a hand-moved clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from common.clock import ManualClock
from media.direct import DirectOutput
from media.forwarding import Sink, Source
from media.keyframes import h264_nal_types, is_keyframe
from rtc.aiortc_adapter import ReceivedPacket
from tests.media.test_direct import FakeSender
from tests.waiting import eventually

IDR = b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x00\x01\x68\xce" + b"\x00\x00\x00\x01\x65\x88\x84"
P = b"\x00\x00\x00\x01\x41\x9a\x02"


@dataclass
class FakeOutput:
    """A subscriber's queue: `capacity` frames; `taken` is what its sender read."""

    capacity: int = 100
    queued: list[tuple[bytes, int]] = field(default_factory=list)
    ended: bool = False

    @property
    def accepting(self) -> bool:
        return not self.ended

    @property
    def pending_bytes(self) -> int:
        return sum(len(d) for d, _ in self.queued)

    def push(self, data: bytes, pts: int) -> bool:
        if len(self.queued) >= self.capacity:
            return False
        self.queued.append((data, pts))
        return True

    def clear(self) -> int:
        n = len(self.queued)
        self.queued.clear()
        return n

    def end(self) -> None:
        self.ended = True

    def take(self) -> list[tuple[bytes, int]]:
        out, self.queued = self.queued, []
        return out


@dataclass
class FakePublisher:
    plis: int = 0

    async def pli(self) -> bool:
        self.plis += 1
        return True


def frame(index: int, gop: int = 10) -> bytes:
    """Frame `index` of a stream with a keyframe every `gop` frames; the index is in the bytes."""
    return (IDR if index % gop == 0 else P) + index.to_bytes(4, "big")


def make(clock: ManualClock, publisher: FakePublisher | None = None, **kw: object) -> Source:
    return Source(
        "cam",
        "video",
        "H264",
        clock=clock,
        request_keyframe=publisher.pli if publisher else None,
        **kw,  # type: ignore[arg-type]
    )


def sink(clock: ManualClock, capacity: int = 100, **kw: object) -> tuple[Sink, FakeOutput]:
    out = FakeOutput(capacity)
    return Sink("viewer", "video", clock=clock, output=out, **kw), out  # type: ignore[arg-type]


def push(source: Source, indices: range, gop: int = 10) -> None:
    for i in indices:
        source.push(frame(i, gop), i * 3600)


def indices(items: list[tuple[bytes, int]]) -> list[int]:
    return [int.from_bytes(d[-4:], "big") for d, _ in items]


def test_keyframes_are_recognised() -> None:
    assert h264_nal_types(IDR) == [7, 8, 5]
    assert is_keyframe("H264", IDR) and not is_keyframe("H264", P)
    assert is_keyframe("VP8", b"\x10\x02\x00\x9d\x01\x2a") and not is_keyframe("VP8", b"\x31\x02\x00")
    assert is_keyframe("opus", b"\x01")


async def test_a_new_sink_starts_from_the_gop_cache_then_goes_live() -> None:
    clock = ManualClock()
    publisher = FakePublisher()
    source = make(clock, publisher)
    push(source, range(13))  # keyframe at 10, then 11 and 12
    s, out = sink(clock)
    s.point(source)
    assert indices(out.take()) == [10, 11, 12]
    push(source, range(13, 15))
    assert indices(out.take()) == [13, 14]
    assert s.stats.cached_frames_out == 3 and s.stats.frames_out == 5
    assert publisher.plis == 0, "a start from the cache needs no keyframe"
    await source.close()


async def test_without_a_cache_a_sink_waits_for_a_keyframe_and_the_publisher_is_asked() -> None:
    clock = ManualClock()
    publisher = FakePublisher()
    source = make(clock, publisher, gop_cache=False)
    push(source, range(3))
    s, out = sink(clock)
    s.point(source)
    await asyncio.sleep(0)  # let the request task run
    assert publisher.plis == 1
    push(source, range(3, 12))
    assert indices(out.take()) == [10, 11]
    assert s.stats.gated == 7
    assert source.stats.keyframe_requests_out == 1
    await source.close()


async def test_keyframe_requests_are_coalesced_not_dropped() -> None:
    clock = ManualClock()
    publisher = FakePublisher()
    source = make(clock, publisher, keyframe_min_interval=1.0)
    s, _ = sink(clock)
    s.point(source)  # no cache yet: the join asks for a keyframe
    await asyncio.sleep(0)
    assert publisher.plis == 1, "the first goes at once"
    for _ in range(5):
        s.keyframe_requested()
    await asyncio.sleep(0)
    await clock.advance(0.5)
    await asyncio.sleep(0)
    assert publisher.plis == 1, "the rest wait for the end of the interval"
    await clock.advance(0.6)
    await asyncio.sleep(0)
    assert publisher.plis == 2, "and then go as one"
    stats = source.stats
    assert stats.keyframe_requests_in == 6 and stats.keyframe_requests_out == 2
    assert stats.keyframe_requests_coalesced == 5
    assert s.stats.keyframe_requests == 5
    await source.close()


@dataclass
class LatePublisher(FakePublisher):
    """A publisher whose stream the node does not know yet for its first `unready` requests."""

    unready: int = 2
    attempts: int = 0

    async def pli(self) -> bool:
        self.attempts += 1
        if self.attempts <= self.unready:
            return False
        return await super().pli()


async def test_a_request_the_publisher_cannot_take_yet_is_tried_again_not_lost() -> None:
    clock = ManualClock()
    publisher = LatePublisher(unready=2)
    source = make(clock, publisher, keyframe_min_interval=1.0)
    source.request_keyframe()  # a subscriber joined before the publisher's first packet
    await asyncio.sleep(0)
    assert (publisher.attempts, publisher.plis) == (1, 0)
    for expected in (2, 3):
        await clock.advance(1.0)
        await asyncio.sleep(0)
        assert publisher.attempts == expected
    assert publisher.plis == 1, "the third attempt reaches the publisher"
    await clock.advance(5.0)
    await asyncio.sleep(0)
    assert publisher.attempts == 3, "and nothing more is sent once it did"
    await source.close()


async def test_a_keyframe_stops_the_retries_of_a_request_not_yet_sent() -> None:
    clock = ManualClock()
    publisher = LatePublisher(unready=100)
    source = make(clock, publisher, keyframe_min_interval=1.0)
    source.request_keyframe()
    await asyncio.sleep(0)
    await clock.advance(1.0)
    await asyncio.sleep(0)
    assert publisher.attempts == 2
    push(source, range(10, 11))  # a keyframe came after all
    await clock.advance(5.0)
    await asyncio.sleep(0)
    assert publisher.attempts == 2 and publisher.plis == 0
    await source.close()


async def test_a_keyframe_satisfies_a_deferred_request() -> None:
    clock = ManualClock()
    publisher = FakePublisher()
    source = make(clock, publisher, keyframe_min_interval=1.0)
    source.request_keyframe()
    await asyncio.sleep(0)
    source.request_keyframe()
    push(source, range(10, 11))  # a keyframe comes meanwhile
    await clock.advance(2)
    await asyncio.sleep(0)
    assert publisher.plis == 1
    await source.close()


async def test_a_slow_subscriber_drops_to_the_next_keyframe_and_the_others_are_untouched() -> None:
    clock = ManualClock()
    source = make(clock)
    slow, slow_out = sink(clock, capacity=4)
    fast, fast_out = sink(clock, capacity=1000)
    push(source, range(1))
    slow.point(source)
    fast.point(source)
    push(source, range(1, 24))  # the slow one never reads: it overflows at frames 4 and 14
    assert indices(fast_out.take()) == list(range(24))
    assert indices(slow_out.queued) == [20, 21, 22, 23], "each time it starts again at the next keyframe"
    stats = slow.stats
    assert stats.overflows == 2
    assert stats.drops == 2 * (4 + 1 + 5)  # the four queued, the one refused, the five skipped to the keyframe
    assert fast.stats.drops == 0
    await source.close()


async def test_the_byte_bound_counts_too() -> None:
    clock = ManualClock()
    source = make(clock)
    s, out = sink(clock, capacity=1000, max_bytes=3 * len(frame(1)))
    push(source, range(1))
    s.point(source)
    push(source, range(1, 5))
    assert s.stats.overflows == 1 and len(out.queued) <= 3
    await source.close()


async def test_repointing_gates_to_a_keyframe_and_keeps_timestamps_continuous() -> None:
    clock = ManualClock()
    publisher_b = FakePublisher()
    a = make(clock)
    b = make(clock, publisher_b, gop_cache=False)
    s, out = sink(clock)
    push(a, range(1))
    s.point(a)
    push(a, range(1, 5))
    first = out.take()
    assert [pts for _, pts in first] == [0, 3600, 7200, 10800, 14400]
    # Source b runs on a timeline of its own (timestamps far from a's).
    for i in range(3):
        b.push(frame(i + 1, 100), 5_000_000 + i * 3600)
    await clock.advance(0.04)
    s.point(b)
    await asyncio.sleep(0)
    assert publisher_b.plis == 1, "re-pointing asks the new publisher for a keyframe"
    b.push(frame(5, 100), 5_100_000)  # still not a keyframe: gated
    b.push(frame(100, 100), 5_103_600)  # a keyframe
    b.push(frame(101, 100), 5_107_200)
    push(a, range(5, 7))  # the old source no longer reaches this sink
    second = out.take()
    assert indices(second) == [100, 101]
    assert second[0][1] == 14400 + 3600, "the new source continues the subscriber's timeline"
    assert second[1][1] - second[0][1] == 3600
    assert s.stats.repoints == 1 and s.stats.gated == 1
    s.point(None)
    b.push(frame(102, 100), 5_110_800)
    assert out.take() == []
    await a.close()
    await b.close()


async def test_a_loss_upstream_holds_every_sink_until_a_keyframe() -> None:
    clock = ManualClock()
    publisher = FakePublisher()
    source = make(clock, publisher)
    s, out = sink(clock)
    push(source, range(1))
    s.point(source)
    push(source, range(1, 3))
    source.lost()
    await asyncio.sleep(0)
    assert publisher.plis == 1
    push(source, range(4, 11))
    assert indices(out.take()) == [0, 1, 2, 10]
    late, late_out = sink(clock)
    late.point(source)
    assert indices(late_out.take()) == [10], "the cache restarted at the keyframe after the loss"
    assert source.stats.gaps == 1
    await source.close()


async def test_audio_is_never_gated() -> None:
    clock = ManualClock()
    source = Source("mic", "audio", "opus", clock=clock, clock_rate=48_000)
    out = FakeOutput()
    s = Sink("ear", "audio", clock=clock, output=out)
    source.push(b"\x01\x02", 0)
    s.point(source)
    source.push(b"\x03\x04", 960)
    assert [pts for _, pts in out.take()] == [0]
    with pytest.raises(ValueError, match="cannot take"):
        Sink("eye", "video", clock=clock, output=FakeOutput()).point(source)
    await source.close()


async def test_a_closed_source_leaves_its_sinks_open_and_idle() -> None:
    clock = ManualClock()
    source = make(clock)
    s, out = sink(clock)
    push(source, range(1))
    s.point(source)
    await source.close()
    assert s.source is None and not out.ended
    source.push(frame(1), 3600)
    s.close()
    assert out.ended


async def test_a_sink_whose_subscriber_went_away_leaves_the_source() -> None:
    clock = ManualClock()
    source = make(clock)
    s, out = sink(clock)
    push(source, range(1))
    s.point(source)
    out.ended = True  # the sender stopped reading
    push(source, range(1, 2))
    assert source.sinks == ()
    await source.close()


@dataclass
class FakePacketOutput(FakeOutput):
    """A subscriber's output that also takes single RTP packets (as `media.direct.DirectOutput` does)."""

    takes_packets: bool = True
    packets: list[tuple[int, bool]] = field(default_factory=list)
    """(the source's sequence number, whether it starts a run) of each packet taken."""

    def push_packet(self, payload: bytes, pts: int, seq: int, marker: bool, start: bool) -> bool:
        self.packets.append((seq, start))
        return True


def keyframe_packets(first_seq: int, timestamp: int, count: int) -> list[ReceivedPacket]:
    """A keyframe's packets in the order they arrive: its frame is whole only once the last is in."""
    return [
        ReceivedPacket(first_seq + k, timestamp, k == count - 1, b"k", starts_frame=k == 0, keyframe=k == 0)
        for k in range(count)
    ]


async def test_packet_by_packet_a_keyframe_satisfies_the_requests_made_before_its_first_packet() -> None:
    clock = ManualClock()
    publisher = FakePublisher()
    source = make(clock, publisher, keyframe_min_interval=1.0, by_packet=True)
    out = FakePacketOutput()
    Sink("viewer", "video", clock=clock, output=out).point(source)
    await asyncio.sleep(0)
    source.request_keyframe()  # deferred to the end of the interval
    for packet in keyframe_packets(100, 0, 3):
        source.push_packet(packet)
    source.push(IDR, 0)
    await clock.advance(2.0)
    await asyncio.sleep(0)
    assert publisher.plis == 1
    assert out.packets[0] == (100, True)
    await source.close()


async def test_packet_by_packet_a_sink_pointed_while_a_keyframe_arrives_still_gets_its_request_through() -> None:
    """Packet by packet a sink starts on a keyframe's first packet: one pointed after that packet, before the
    frame is whole, cannot start on that keyframe, so its request must not count as satisfied by it (the browser
    meeting test's subscribers that never got a publisher's video)."""
    clock = ManualClock()
    publisher = FakePublisher()
    source = make(clock, publisher, keyframe_min_interval=1.0, by_packet=True)
    early_out, late_out = FakePacketOutput(), FakePacketOutput()
    early = Sink("early", "video", clock=clock, output=early_out)
    late = Sink("late", "video", clock=clock, output=late_out)
    early.point(source)  # no cache yet: a keyframe is asked for at once
    await asyncio.sleep(0)
    assert publisher.plis == 1
    first, *rest = keyframe_packets(100, 0, 4)
    source.push_packet(first)
    late.point(source, use_cache=False)  # not on this keyframe (as when it cannot be replayed): it asks for one
    for packet in rest:
        source.push_packet(packet)
    source.push(IDR, 0)  # the keyframe is whole
    await clock.advance(1.0)
    await asyncio.sleep(0)
    assert publisher.plis == 2, "the late sink's request reached the publisher"
    for packet in keyframe_packets(104, 3600, 3):
        source.push_packet(packet)
    assert early_out.packets[0] == (100, True)
    assert late_out.packets[0] == (104, True) and not late.waiting_for_keyframe
    await source.close()


def delta_packets(first_seq: int, timestamp: int, count: int) -> list[ReceivedPacket]:
    """A delta frame's packets in the order they arrive."""
    return [
        ReceivedPacket(first_seq + k, timestamp, k == count - 1, b"d", starts_frame=k == 0, keyframe=False)
        for k in range(count)
    ]


async def pli_times(clock: ManualClock, publisher: FakePublisher, each_frame: Callable[[int], None]) -> list[float]:
    """Run 14 s of a 16 fps stream (a frame interval exact in binary) without a keyframe (`each_frame(index)`
    feeds frame `index`): when each PLI reached the publisher, in seconds from the start."""
    start = clock.monotonic()
    times: list[float] = []
    seen = publisher.plis
    for index in range(1, 14 * 16 + 1):
        await clock.advance(1 / 16)
        each_frame(index)
        await asyncio.sleep(0)
        if publisher.plis > seen:
            times.append(clock.monotonic() - start)
            seen = publisher.plis
    return times


async def test_a_sink_still_waiting_for_its_keyframe_asks_again_backing_off() -> None:
    """The PLI a sink's start asked for is lost (or the encoder ignores it): without asking again the subscriber
    would wait for the publisher's next natural keyframe, which a WebRTC encoder may never make."""
    clock = ManualClock()
    publisher = FakePublisher()
    source = make(clock, publisher, gop_cache=False)
    s, out = sink(clock)
    s.point(source)
    await asyncio.sleep(0)
    assert publisher.plis == 1
    times = pli_times(clock, publisher, lambda i: source.push(frame(i, gop=1000), i * 3600))
    assert await times == [1.0, 3.0, 7.0, 12.0], "after 1 s, then 2, 4 and 5 s: once per interval at most"
    assert s.stats.keyframe_rerequests == 4 and s.waiting_for_keyframe and out.queued == []
    source.push(frame(1000, gop=1000), 1000 * 3600)  # a keyframe at last
    assert indices(out.take()) == [1000]

    def read_on(index: int) -> None:
        source.push(frame(1000 + index, gop=1000), (1000 + index) * 3600)
        out.take()

    assert await pli_times(clock, publisher, read_on) == [], "and stops asking once it started"
    await source.close()


async def test_packet_by_packet_waiting_sinks_ask_again_as_one_pli() -> None:
    """Many sinks waiting on one publisher ask again each, and their requests still make one PLI."""
    clock = ManualClock()
    publisher = FakePublisher()
    source = make(clock, publisher, by_packet=True)
    sinks = [Sink(f"viewer-{k}", "video", clock=clock, output=FakePacketOutput()) for k in range(10)]
    for s in sinks:
        s.point(source)
    await asyncio.sleep(0)
    assert publisher.plis == 1

    def each_frame(index: int) -> None:
        for packet in delta_packets(3 * index, index * 3600, 3):
            source.push_packet(packet)

    assert await pli_times(clock, publisher, each_frame) == [1.0, 3.0, 7.0, 12.0]
    assert all(s.stats.keyframe_rerequests == 4 and s.waiting_for_keyframe for s in sinks)
    assert source.stats.keyframe_requests_in == 10 + 10 * 4
    await source.close()


def cached_group(source: Source, deltas: int = 2) -> None:
    """A keyframe (packets 100-102) and `deltas` delta frames (103-104, 105-106, ...), whole: the GOP cache holds
    them."""
    groups = [keyframe_packets(100, 0, 3)] + [delta_packets(103 + 2 * k, (k + 1) * 3600, 2) for k in range(deltas)]
    for index, packets in enumerate(groups):
        for packet in packets:
            source.push_packet(packet)
        source.push(frame(index), index * 3600)


async def test_packet_by_packet_a_sink_pointed_while_a_keyframe_arrives_starts_on_it() -> None:
    """Pointed after a keyframe's first packets came, before the frame is whole (the GOP cache still holds the
    group before it), a sink starts on that keyframe, from its first packet: the old group's frames would be
    followed by frames that refer to the keyframe the subscriber never got."""
    clock = ManualClock()
    publisher = FakePublisher()
    source = make(clock, publisher, by_packet=True)
    cached_group(source, deltas=1)
    assert len(source.gop_frames) == 2
    key = keyframe_packets(105, 10 * 3600, 4)
    for packet in key[:2]:
        source.push_packet(packet)
    s = Sink("viewer", "video", clock=clock, output=(out := FakePacketOutput()))
    s.point(source)
    for packet in key[2:]:
        source.push_packet(packet)
    source.push(frame(10), 10 * 3600)  # the keyframe is whole: in the cache from now on
    later = Sink("later", "video", clock=clock, output=(later_out := FakePacketOutput()))
    later.point(source)
    for packet in delta_packets(109, 11 * 3600, 2):
        source.push_packet(packet)
    source.push(frame(11), 11 * 3600)
    await asyncio.sleep(0)
    assert out.queued == [] and s.stats.cached_frames_out == 0, "nothing of the old group"
    assert out.packets == [(105, True)] + [(seq, False) for seq in range(106, 111)]
    assert indices(later_out.queued) == [10], "once whole, the keyframe starts a sink from the cache"
    assert later_out.packets == [(109, True), (110, False)]
    assert publisher.plis == 0, "neither had to ask for a keyframe"
    await source.close()


async def test_packet_by_packet_a_sink_pointed_during_a_keyframe_too_long_to_replay_waits_for_the_next() -> None:
    """A keyframe of more packets than the source keeps (a screen share's, say) cannot be replayed from its first
    packet; the GOP cache still holds the group before it, whose next frames refer to that keyframe. The sink
    neither takes the old group nor starts on a delta frame: it asks for a keyframe and starts on it."""
    clock = ManualClock()
    publisher = FakePublisher()
    source = make(clock, publisher, by_packet=True)
    cached_group(source, deltas=1)
    key = keyframe_packets(105, 2 * 3600, 200)
    for packet in key[:150]:
        source.push_packet(packet)
    s = Sink("viewer", "video", clock=clock, output=(out := FakePacketOutput()))
    s.point(source)
    for packet in key[150:]:
        source.push_packet(packet)
    source.push(frame(2), 2 * 3600)
    for packet in delta_packets(305, 3 * 3600, 2):
        source.push_packet(packet)
    source.push(frame(3), 3 * 3600)
    await eventually(lambda: publisher.plis == 1)
    assert out.queued == [] and s.stats.cached_frames_out == 0, "nothing of the old group"
    assert out.packets == [], "no delta frame without its keyframe"
    for packet in keyframe_packets(307, 4 * 3600, 2):
        source.push_packet(packet)
    assert out.packets == [(307, True), (308, False)]
    await source.close()


async def test_packet_by_packet_a_frame_that_starts_like_a_keyframe_but_is_not_one_does_not_hide_the_cache() -> None:
    """An H.264 encoder may send its SPS before a delta frame: the packet looks like a keyframe's start. Once that
    frame is whole (and not a keyframe), a sink pointed after it starts from the GOP cache as usual."""
    clock = ManualClock()
    publisher = FakePublisher()
    source = make(clock, publisher, by_packet=True)
    cached_group(source, deltas=1)
    sps_first = [
        ReceivedPacket(105, 2 * 3600, False, b"s", starts_frame=True, keyframe=True),
        ReceivedPacket(106, 2 * 3600, False, b"d", starts_frame=False, keyframe=False),
        ReceivedPacket(107, 2 * 3600, True, b"d", starts_frame=False, keyframe=False),
    ]
    for packet in sps_first:
        source.push_packet(packet)
    source.push(frame(2), 2 * 3600)
    s = Sink("viewer", "video", clock=clock, output=(out := FakePacketOutput()))
    s.point(source)
    await asyncio.sleep(0)
    assert indices(out.queued) == [0, 1, 2], "from the cache"
    assert publisher.plis == 0
    await source.close()


@dataclass
class RecordingPacketOutput(FakePacketOutput):
    """A packet-taking output that also records the order of frames and packets: ("frame", index) or
    ("packet", the source's sequence number)."""

    sent: list[tuple[str, int]] = field(default_factory=list)

    def push(self, data: bytes, pts: int) -> bool:
        self.sent.append(("frame", int.from_bytes(data[-4:], "big")))
        return super().push(data, pts)

    def push_packet(self, payload: bytes, pts: int, seq: int, marker: bool, start: bool) -> bool:
        self.sent.append(("packet", seq))
        return super().push_packet(payload, pts, seq, marker, start)


async def test_packet_by_packet_a_sink_pointed_while_a_delta_frame_arrives_gets_it_after_the_cache() -> None:
    """Pointed after a delta frame's first packets came, a sink starting from the GOP cache gets that frame too,
    replayed from its first packet after the cached frames: resuming at the next frame's first packet would skip
    it, and the subscriber would decode frames that refer to one it never got."""
    clock = ManualClock()
    publisher = FakePublisher()
    source = make(clock, publisher, by_packet=True)
    cached_group(source)
    arriving = delta_packets(107, 3 * 3600, 3)
    for packet in arriving[:2]:
        source.push_packet(packet)
    s = Sink("viewer", "video", clock=clock, output=(out := RecordingPacketOutput()))
    s.point(source)
    source.push_packet(arriving[2])
    source.push(frame(3), 3 * 3600)
    for packet in delta_packets(110, 4 * 3600, 2):
        source.push_packet(packet)
    source.push(frame(4), 4 * 3600)
    await asyncio.sleep(0)
    assert out.sent == [("frame", 0), ("frame", 1), ("frame", 2)] + [("packet", seq) for seq in range(107, 112)]
    assert out.packets == [(107, True)] + [(seq, False) for seq in range(108, 112)], "one run, nothing twice"
    assert s.stats.cached_frames_out == 3 and s.stats.frames_out == 5 and not s.waiting_for_keyframe
    assert publisher.plis == 0
    await source.close()


async def test_packet_by_packet_without_the_arriving_frames_first_packet_a_sink_resumes_at_the_next_frame() -> None:
    """The frame arriving when the sink is pointed lost its first packet on the way in (or it is too old to be
    replayed): the sink does as before and resumes live at the next frame's first packet."""
    clock = ManualClock()
    source = make(clock, FakePublisher(), by_packet=True)
    cached_group(source)
    arriving = delta_packets(107, 3 * 3600, 3)
    source.push_packet(arriving[1])  # 107 is not (yet) in
    s = Sink("viewer", "video", clock=clock, output=(out := RecordingPacketOutput()))
    s.point(source)
    for packet in [arriving[2], *delta_packets(110, 4 * 3600, 2)]:
        source.push_packet(packet)
    assert out.sent == [("frame", 0), ("frame", 1), ("frame", 2), ("packet", 110), ("packet", 111)]
    assert out.packets == [(110, True), (111, False)]
    await source.close()


class NotYetReadySender(FakeSender):
    """A subscriber's sender whose connection is not up yet: what is pushed waits in the output's queue."""

    def __init__(self) -> None:
        super().__init__()
        self.up = asyncio.Event()

    def ready(self) -> bool:
        return self.up.is_set()

    async def wait_ready(self) -> bool:
        await self.up.wait()
        return True


async def test_packet_by_packet_a_frame_replayed_after_a_queued_cache_goes_out_after_it_contiguously() -> None:
    """The subscriber's connection is not up when the sink is pointed: the cached frames wait in the direct
    output's queue, and the arriving frame's replayed packets wait behind them; then all go out in order, numbered
    one after the other."""
    clock = ManualClock()
    source = make(clock, FakePublisher(), by_packet=True)
    cached_group(source)
    arriving = [
        ReceivedPacket(107 + k, 3 * 3600, k == 2, bytes([107 + k]), starts_frame=k == 0, keyframe=False)
        for k in range(3)
    ]
    for packet in arriving[:2]:
        source.push_packet(packet)
    sender = NotYetReadySender()
    output = DirectOutput(sender, "VP8", pace_bps=None)  # type: ignore[arg-type]  # packetizes any bytes
    s = Sink("viewer", "video", clock=clock, output=output)
    s.point(source)
    source.push_packet(arriving[2])
    assert sender.sent == []
    sender.up.set()
    await eventually(lambda: output.packets_sent - len(sender.sent) == 0 and len(sender.sent) > 3)
    seqs = [seq for seq, _ in sender.sent]
    assert seqs == [(seqs[0] + k) & 0xFFFF for k in range(len(seqs))], "contiguous"
    assert [payload for _, payload in sender.sent[-3:]] == [b"\x6b", b"\x6c", b"\x6d"], "107-109, after the frames"
    assert output.frames_sent == 3 + 1
    await output.close()
    await source.close()
