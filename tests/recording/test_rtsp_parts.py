"""The pieces of the recorder's RTSP path on their own: SDP reading, authentication answers, parameter sets."""

from __future__ import annotations

import base64

import pytest

from agents.recording import h26x
from agents.recording.depacketize import Depacketizer, Frame, H264Depacketizer, HevcDepacketizer
from agents.recording.rtsp_client import Authenticator, RtspError, parse_sdp, split_credentials
from simulator.hevc import MAIN_H265, encode_hevc_loop
from simulator.video import SUB, encode_loop

SPS = base64.b64encode(b"\x67\x4d\x00\x1e").decode()


def test_sdp_tracks_and_control_urls() -> None:
    base = "rtsp://10.0.0.5:554/Streaming/Channels/101/"
    audio_first = (
        "v=0\r\nm=audio 0 RTP/AVP 0\r\na=control:trackID=2\r\n"
        "m=video 0 RTP/AVP 97\r\na=rtpmap:97 H265/90000\r\na=control:trackID=1\r\n"
    )
    track = parse_sdp(audio_first, base)
    assert (track.encoding, track.clock_rate, track.control) == ("H265", 90_000, base + "trackID=1")
    absolute = (
        f"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 sprop-parameter-sets={SPS},!!\r\n"
        "a=control:rtsp://10.0.0.5/x/video"
    )
    track = parse_sdp(absolute, base)
    assert track.control == "rtsp://10.0.0.5/x/video" and track.params == (b"\x67\x4d\x00\x1e",)  # bad base64 skipped
    aggregate = "a=control:*\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    assert parse_sdp(aggregate, base).control == base
    with pytest.raises(RtspError, match=r"no H\.264 or H\.265"):
        parse_sdp("m=video 0 RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\n", base)


def test_credentials_leave_the_url_and_answer_challenges() -> None:
    plain, user, password = split_credentials("rtsp://ad%40min:p%40ss%3Aw@[fe80::1]:8554/main?x=1")
    assert (plain, user, password) == ("rtsp://[fe80::1]:8554/main?x=1", "ad@min", "p@ss:w")
    with pytest.raises(RtspError):
        split_credentials("http://camera/main")
    basic = Authenticator("admin", "secret")
    assert basic.challenged('Basic realm="cam"') and basic.header("DESCRIBE", "rtsp://c/") == "Basic YWRtaW46c2VjcmV0"
    digest = Authenticator("admin", "secret")
    assert digest.challenged('Basic realm="cam"\nDigest realm="cam", nonce="n1"')  # Digest preferred
    answer = digest.header("PLAY", "rtsp://c/")
    assert answer is not None and answer.startswith("Digest ") and "secret" not in answer
    assert not Authenticator("", "").challenged('Digest realm="cam", nonce="n1"')  # nothing to answer with


def test_picture_size_and_configuration_records_from_real_encoders() -> None:
    loop = encode_loop("parts", SUB)
    video = h26x.h264_format(loop.sps, loop.pps)
    assert (video.codec, video.width, video.height) == ("h264", 640, 360)
    assert video.config[1:4] == loop.sps[1:4] and video.config.endswith(loop.pps)
    hevc = encode_hevc_loop("parts", MAIN_H265)
    video = h26x.hevc_format(hevc.vps, hevc.sps, hevc.pps)
    assert (video.codec, video.width, video.height) == ("hevc", 1280, 720)
    with pytest.raises(h26x.ParameterSetError):
        h26x.h264_format(loop.sps[:3], loop.pps)
    assert h26x.rbsp(b"\x00\x00\x03\x01\x00\x00\x03") == b"\x00\x00\x01\x00\x00"


def test_depacketizer_drops_a_fragment_whose_start_was_lost_and_unwraps_timestamps() -> None:
    frames: list[Frame] = []
    depacketizer = H264Depacketizer(frames.append)

    def packet(ts: int, payload: bytes, marker: bool = True) -> None:
        data = _rtp(ts, payload, marker)
        depacketizer.packet(data, 0, len(data))

    packet(2**32 - 3600, b"\x65idr")
    packet(0, b"\x7c\x41middle", marker=True)  # FU-A without its start: dropped
    packet(3600, b"\x41delta")
    assert [f.timestamp for f in frames] == [0, 7200] and frames[0].key and not frames[1].key
    assert frames[1].data == b"\x00\x00\x00\x06\x41delta" and depacketizer.dropped == 1


@pytest.mark.parametrize(
    ("make", "header", "aggregate", "fu", "sps", "pps", "idr"),
    [
        # H.264: 1-byte NAL headers; STAP-A (type 24); FU-A (type 28), its FU header carrying the IDR's type 5
        (H264Depacketizer, 1, b"\x18", b"\x7c\x05", b"\x67sps", b"\x68pps", b"\x65idr"),
        # H.265: 2-byte NAL headers; AP (type 48); FU (type 49), its FU header carrying the IDR's type 19
        (HevcDepacketizer, 2, b"\x60\x01", b"\x62\x01\x13", b"\x42\x01sps", b"\x44\x01pps", b"\x26\x01idr"),
    ],
    ids=["h264", "h265"],
)
def test_both_codecs_read_aggregation_packets_and_fragments(
    make: type[Depacketizer], header: int, aggregate: bytes, fu: bytes, sps: bytes, pps: bytes, idr: bytes
) -> None:
    frames: list[Frame] = []
    depacketizer = make(frames.append)

    def fragment(bits: int, part: bytes) -> bytes:  # bits: 0x80 the first fragment, 0x40 the last
        return fu[:-1] + bytes([fu[-1] | bits]) + part

    body = idr[header:]
    sized = b"".join(len(nal).to_bytes(2, "big") + nal for nal in (sps, pps))
    for data in (
        _rtp(0, aggregate + sized, marker=False),  # the parameter sets in one aggregation packet
        _rtp(0, fragment(0x80, body[:1]), marker=False),  # the IDR in three fragments
        _rtp(0, fragment(0x00, body[1:2]), marker=False),
        _rtp(0, fragment(0x40, body[2:])),
        _rtp(3600, fragment(0x00, b"lost start")),  # a middle fragment without its first: dropped
    ):
        depacketizer.packet(data, 0, len(data))
    depacketizer.flush()
    assert len(frames) == 1 and frames[0].key
    assert frames[0].data == b"".join(len(nal).to_bytes(4, "big") + nal for nal in (sps, pps, idr))
    assert list(depacketizer.params.values()) == [sps, pps] and depacketizer.dropped == 1


def _rtp(ts: int, payload: bytes, marker: bool = True) -> bytes:
    return bytes([0x80, 0x80 if marker else 0, 0, 1]) + ts.to_bytes(4, "big") + bytes(4) + payload
