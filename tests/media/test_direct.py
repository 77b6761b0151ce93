"""The fast path's shared packetization (the real-peer tests in test_forwarding_peers.py run it end to end)."""

from __future__ import annotations

from media.direct import PayloadCache
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
