"""The adapter's video jitter buffer on its own, packet by packet: release on the marker bit, reordering,
a loss filled by retransmission, a loss given up on (skip to the next frame, report the gap), a jump."""

from __future__ import annotations

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

from rtc.aiortc_adapter import _MarkerJitterBuffer

PT = 96


def packet(seq: int, ts: int, marker: bool, first: bool) -> RtpPacket:
    """A VP8-like packet: the descriptor's S bit says whether it starts a frame."""
    p = RtpPacket(payload_type=PT, marker=int(marker), sequence_number=seq & 0xFFFF, timestamp=ts, ssrc=1234)
    p.payload = bytes([0x10 if first else 0x00]) + bytes([seq & 0xFF])
    p._data = bytes([seq & 0xFF])  # type: ignore[attr-defined]  # what the receiver's depayloader would set
    return p


def frame(start: int, count: int, ts: int) -> list[RtpPacket]:
    return [packet(start + i, ts, i == count - 1, i == 0) for i in range(count)]


class Gaps:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


class Emitted:
    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []

    def __call__(self, frame: JitterFrame, payload_type: int) -> None:
        assert payload_type == PT
        self.frames.append((frame.timestamp, frame.data))


def make(gaps: Gaps | None = None, max_wait: int = 96) -> _MarkerJitterBuffer:
    return _MarkerJitterBuffer(gaps or Gaps(), {PT: "VP8"}, Emitted(), max_wait=max_wait)


def feed(buffer: _MarkerJitterBuffer, packets: list[RtpPacket]) -> list[tuple[int, bytes]]:
    """The frames emitted while these packets went in (add() itself never returns one)."""
    emitted = buffer._emit
    assert isinstance(emitted, Emitted)
    before = len(emitted.frames)
    for p in packets:
        assert buffer.add(p)[1] is None
    return emitted.frames[before:]


def test_a_frame_is_released_by_its_marker_and_out_of_order_packets_wait() -> None:
    buffer = make()
    a = frame(100, 3, 0)
    assert feed(buffer, a) == [(0, bytes([100, 101, 102]))]
    b = frame(103, 3, 3600)
    assert feed(buffer, [b[0], b[2]]) == [], "the middle packet is missing"
    assert feed(buffer, [b[1]]) == [(3600, bytes([103, 104, 105]))]
    assert feed(buffer, [b[1]]) == [], "a late duplicate is dropped"
    assert buffer.ssrc == 1234


def test_it_starts_on_a_frame_start_or_after_a_marker() -> None:
    buffer = make()
    joined_late = frame(10, 3, 0)[1:]  # no start: wait for the frame's end
    assert feed(buffer, joined_late) == []
    assert feed(buffer, frame(13, 2, 3600)) == [(3600, bytes([13, 14]))]
    fresh = make()
    assert feed(fresh, frame(50, 2, 0)) == [(0, bytes([50, 51]))], "a first packet that starts a frame"


def test_a_loss_given_up_on_skips_to_the_next_frame_and_reports_the_gap() -> None:
    gaps = Gaps()
    buffer = make(gaps, max_wait=8)
    feed(buffer, frame(0, 2, 0))
    lost = frame(2, 3, 3600)
    released = feed(buffer, [lost[0], lost[2]])  # lost[1] never comes
    for n in range(4):
        released += feed(buffer, frame(5 + 3 * n, 3, 7200 + 3600 * n))
    assert gaps.count == 1
    assert [ts for ts, _ in released] == [7200, 10800, 14400, 18000], "the broken frame is skipped"


def test_a_jump_far_ahead_resynchronises() -> None:
    gaps = Gaps()
    buffer = make(gaps)
    feed(buffer, frame(0, 2, 0))
    assert feed(buffer, frame(30_000, 2, 90_000)) == []  # resynchronised on this frame's marker
    assert gaps.count == 1
    assert feed(buffer, frame(30_002, 2, 93_600)) == [(93_600, bytes([30_002 & 0xFF, 30_003 & 0xFF]))]


def test_sequence_numbers_wrap() -> None:
    buffer = make()
    assert feed(buffer, frame(65_534, 3, 0)) == [(0, bytes([0xFE, 0xFF, 0x00]))]
    assert feed(buffer, frame(1, 2, 3600)) == [(3600, bytes([1, 2]))]


def test_frames_completed_by_one_retransmission_all_go_out_at_once_in_order() -> None:
    """A hole filled late releases every frame waiting behind it, not one per later packet (single-packet frames
    would otherwise stay behind for good)."""
    buffer = make()
    feed(buffer, frame(0, 1, 0))
    held = [packet(1, 3600, True, True), packet(2, 7200, True, True), packet(3, 10800, True, True)]
    assert feed(buffer, held[1:]) == []
    assert [ts for ts, _ in feed(buffer, held[:1])] == [3600, 7200, 10800]
