"""The fast path's shared packetization (the real-peer tests in test_forwarding_peers.py run it end to end)."""

from __future__ import annotations

from media.direct import DirectOutput, PayloadCache
from rtc.aiortc_adapter import packetize


def test_a_frame_is_packetized_once_whatever_the_number_of_subscribers() -> None:
    cache = PayloadCache(size=2)
    frame = b"\x00\x00\x00\x01\x65" + bytes(5000)
    first = cache.payloads("H264", frame)
    for _ in range(100):
        assert cache.payloads("H264", frame) is first
    assert cache.packetized == 1
    assert len(first) > 1 and all(len(p) <= 1300 for p in first)
    assert [p[0] & 0x1F for p in first] == [28] * len(first), "one large NAL unit becomes FU-A fragments"
    # An equal frame that is another object is packetized again (identity, not equality, is the key) ...
    cache.payloads("H264", bytes(bytearray(frame)))
    assert cache.packetized == 2
    # ... and old entries leave the cache.
    cache.payloads("H264", b"\x00\x00\x00\x01\x41\x9a")
    cache.payloads("H264", b"\x00\x00\x00\x01\x41\x9b")
    assert cache.payloads("H264", frame) is not first


def test_vp8_payloads_carry_a_descriptor_without_picture_id() -> None:
    frame = bytes(3000)
    payloads = packetize("VP8", frame)
    assert payloads[0][0] == 0x10 and all(p[0] == 0x00 for p in payloads[1:])
    assert b"".join(p[1:] for p in payloads) == frame
    assert packetize("opus", b"\x01\x02") == [b"\x01\x02"]


class FakeSender:
    """What `DirectOutput` uses of `rtc.aiortc_adapter.DirectSender`: up at once, keeps what it is given."""

    ssrc = 0x1234

    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes]] = []

    def negotiated(self) -> bool:
        return True

    def payload_types(self) -> tuple[int, int | None]:
        return 96, 97

    def ready(self) -> bool:
        return True

    def closed(self) -> bool:
        return False

    def write_buffer_size(self) -> int:
        return 0

    def send(self, packet: bytes, seq: int) -> None:
        assert int.from_bytes(packet[2:4], "big") == seq
        self.sent.append((seq, packet[12:]))

    def send_frame(self, packets: list[bytes], first_seq: int) -> None:
        for i, packet in enumerate(packets):
            self.send(packet, (first_seq + i) & 0xFFFF)

    def account(self, rtp_timestamp: int, packets: int, octets: int) -> None:
        pass


async def test_packets_are_renumbered_contiguously_and_late_copies_keep_their_place() -> None:
    sender = FakeSender()
    output = DirectOutput(sender, "VP8", pace_bps=None)  # type: ignore[arg-type]
    assert output.push(bytes(3000), 0)  # a frame first: three packets of the output's own numbering
    first = sender.sent[0][0]
    # A run from the source's 65534 (it wraps), one packet lost on the way (65535), then its late copy.
    assert output.push_packet(b"a", 3000, 65534, False, True)
    assert output.push_packet(b"c", 3000, 0, True, False)
    assert output.push_packet(b"b", 3000, 65535, False, False)
    # A copy from before the run's start is not forwarded: its number here is the frame's last packet's.
    assert output.push_packet(b"x", 3000, 65533, False, False)
    seqs = [seq for seq, _ in sender.sent]
    assert seqs == [(first + i) & 0xFFFF for i in (0, 1, 2, 3, 5, 4)]
    assert [payload for _, payload in sender.sent[3:]] == [b"a", b"c", b"b"]
    # A new run (a re-point) goes on right after the highest number sent.
    assert output.push_packet(b"d", 6000, 500, True, True)
    assert sender.sent[-1] == ((first + 6) & 0xFFFF, b"d")
    assert output.packets_sent == 7 and output.frames_sent == 3
