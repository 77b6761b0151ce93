"""An H.265 stream on every simulated camera, at the RTSP path `/main265` (RTSP only: ONVIF lists H.264 profiles).

Real cameras stream H.265 as often as H.264, and the recorder passes it through; this gives it something to
record. The loop is the same picture as the main profile's, encoded with libx265 (keyframe every 2 s, no B-frames,
VPS/SPS/PPS before each keyframe), packetized per RFC 7798 (single NAL unit packets and FUs), and described in
the SDP with `sprop-vps/sps/pps`. HEVC loops are encoded in memory (once per camera and process), not cached on
disk.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import av

from simulator.rtp import MAX_PAYLOAD, RtpFrame
from simulator.rtsp_feed import StreamFeed
from simulator.video import (
    LOOP_GOPS,
    EncodedFrame,
    EncodedLoop,
    LoopCache,
    ProfileSpec,
    encode_rendered,
    frame_durations,
    split_annexb,
)

MAIN_H265 = ProfileSpec("main265", "MainStreamH265", 1280, 720, 25, 2000, 2.0, "main265")
_VPS, _SPS, _PPS = 32, 33, 34
_SEI = (39, 40)
_FU = 49


def nal_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F


@dataclass(frozen=True)
class HevcLoop(EncodedLoop):
    """An H.265 loop: the parameter sets of `EncodedLoop` plus the VPS."""

    vps: bytes = b""

    def sdp_lines(self) -> list[str]:
        sprop = ";".join(
            f"sprop-{name}={base64.b64encode(nal).decode('ascii')}"
            for name, nal in (("vps", self.vps), ("sps", self.sps), ("pps", self.pps))
        )
        return ["a=rtpmap:96 H265/90000", f"a=fmtp:96 {sprop}"]


def encode_hevc_loop(camera_name: str, profile: ProfileSpec) -> HevcLoop:
    """Render and encode the loop with libx265 (CPU-heavy, blocking: call it in a thread)."""
    count = profile.gop * LOOP_GOPS
    ctx = av.CodecContext.create("libx265", "w")
    ctx.options = {
        "preset": "ultrafast",
        "x265-params": (
            f"log-level=error:keyint={profile.gop}:min-keyint={profile.gop}:scenecut=0:bframes=0:repeat-headers=1:"
            f"vbv-maxrate={profile.bitrate_kbps}:vbv-bufsize={profile.bitrate_kbps}"
        ),
    }
    units = encode_rendered(ctx, camera_name, profile, count)
    params: dict[int, bytes] = {}
    frames: list[EncodedFrame] = []
    for unit, duration in zip(units, frame_durations(profile, count), strict=True):
        nals = [nal for nal in split_annexb(unit) if nal_type(nal) not in _SEI]
        for nal in nals:
            if nal_type(nal) in (_VPS, _SPS, _PPS):
                params.setdefault(nal_type(nal), nal)
        keyframe = any(16 <= nal_type(nal) <= 21 for nal in nals)
        frames.append(EncodedFrame(tuple(nals), keyframe, duration))
    if len(params) != 3 or not frames[0].keyframe:
        raise RuntimeError("libx265 output lacks VPS, SPS, PPS or a leading keyframe")
    return HevcLoop(profile, params[_SPS], params[_PPS], tuple(frames), vps=params[_VPS])


def packetize_nal(nal: bytes, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """One NAL unit as RTP payloads (RFC 7798): itself if small, else fragmentation units."""
    if len(nal) <= max_payload:
        return [nal]
    header = bytes(((nal[0] & 0x81) | (_FU << 1), nal[1]))
    kind = nal_type(nal)
    body = nal[2:]
    step = max_payload - 3
    chunks = [body[i : i + step] for i in range(0, len(body), step)]
    return [
        header + bytes(((0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0) | kind,)) + chunk
        for i, chunk in enumerate(chunks)
    ]


def packetize_loop(loop: EncodedLoop) -> tuple[RtpFrame, ...]:
    return tuple(
        RtpFrame(tuple(p for nal in frame.nals for p in packetize_nal(nal)), frame.keyframe, frame.duration)
        for frame in loop.frames
    )


class HevcLoopCache(LoopCache):
    """The loop cache, encoding with libx265 and keeping loops in memory only."""

    def _load_or_encode(self, camera_name: str, profile: ProfileSpec, cache_dir: Path | None) -> EncodedLoop:
        loop = encode_hevc_loop(camera_name, profile)
        with self._lock:
            self.encodes += 1
        return loop


HEVC_LOOPS = HevcLoopCache()


class HevcFeed(StreamFeed):
    """The `/main265` feed: the shared pacing of StreamFeed over an H.265 loop."""

    async def encoded(self) -> EncodedLoop:
        if self._loop_data is None:
            loop = await HEVC_LOOPS.get(self.camera_name, self.profile, None)
            if self._loop_data is None:
                self._frames = packetize_loop(loop)
                self._loop_data = loop
        return self._loop_data
