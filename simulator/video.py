"""The simulated cameras' pictures: a pre-encoded H.264 loop per camera and profile, and a JPEG snapshot.

Each loop is rendered (a scrolling gradient and a bouncing box, with the camera's name and a frame counter burned
in) and encoded once with libx264, in a thread, on first use; every RTSP client of that camera then shares it.
Loops are also cached on disk (if a cache directory is given) so restarts and runs of many cameras are fast.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import hashlib
import json
import logging
import os
import struct
import threading
import time
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from common.files import write_atomically

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Bump when rendering, encoding or the cache file layout changes: old cache files are then ignored."""

LOOP_GOPS = 2
"""The loop is this many keyframe intervals long."""

RTP_CLOCK = 90_000

_MAGIC = b"KNLOOP\x00\x01"
_NAL_SEI = 6
_NAL_SPS = 7
_NAL_PPS = 8
_NAL_IDR = 5

Frame = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class ProfileSpec:
    """One media profile of a simulated camera (ONVIF profile and RTSP path)."""

    token: str
    name: str
    width: int
    height: int
    fps: int
    bitrate_kbps: int
    gop_s: float
    path: str
    """The RTSP path, without a slash: "main" or "sub"."""

    @property
    def gop(self) -> int:
        """Frames per keyframe interval."""
        return max(1, round(self.fps * self.gop_s))


MAIN = ProfileSpec("main", "MainStream", 1280, 720, 25, 2000, 2.0, "main")
SUB = ProfileSpec("sub", "SubStream", 640, 360, 25, 512, 2.0, "sub")
PROFILES: tuple[ProfileSpec, ...] = (MAIN, SUB)


@dataclass(frozen=True)
class EncodedFrame:
    """One access unit: its NAL units without start codes, in decode (= presentation) order."""

    nals: tuple[bytes, ...]
    keyframe: bool
    duration: int
    """In 90 kHz RTP clock ticks."""


@dataclass(frozen=True)
class EncodedLoop:
    """A loop of frames that starts on a keyframe and decodes cleanly when repeated."""

    profile: ProfileSpec
    sps: bytes
    pps: bytes
    frames: tuple[EncodedFrame, ...]

    @property
    def profile_level_id(self) -> str:
        """The SDP fmtp profile-level-id: the three bytes after the SPS NAL header, in hex."""
        return self.sps[1:4].hex()

    @property
    def sprop_parameter_sets(self) -> str:
        return ",".join(base64.b64encode(nal).decode("ascii") for nal in (self.sps, self.pps))

    def sdp_lines(self) -> list[str]:
        """The SDP media attributes for this loop's codec (simulator.hevc overrides them for H.265)."""
        return [
            "a=rtpmap:96 H264/90000",
            f"a=fmtp:96 packetization-mode=1;profile-level-id={self.profile_level_id};"
            f"sprop-parameter-sets={self.sprop_parameter_sets}",
        ]

    @property
    def duration_ticks(self) -> int:
        return sum(frame.duration for frame in self.frames)

    @property
    def byte_size(self) -> int:
        return sum(len(nal) for frame in self.frames for nal in frame.nals)


# ---------------------------------------------------------------------------------------------------------------
# Rendering


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only: fold Vietnamese diacritics ("Mầm non Đồng" → "Mam non Dong")."""
    text = text.replace("đ", "d").replace("Đ", "D")
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch if ch.isprintable() else "?" for ch in folded)


@functools.lru_cache(maxsize=8)
def _gradient(width: int, height: int) -> Frame:
    """A colourful background, twice as wide as the picture so it can scroll."""
    x = np.linspace(0.0, 4.0 * np.pi, 2 * width, dtype=np.float32)
    columns = np.stack([127.5 + 127.5 * np.sin(x), 127.5 + 127.5 * np.sin(x + 2.1), 90.0 + 60.0 * np.sin(x / 2)], -1)
    row = columns.astype(np.uint8)[None, :, :]
    return np.ascontiguousarray(np.broadcast_to(row, (height, 2 * width, 3)))


def render_frame(camera_name: str, profile: ProfileSpec, index: int) -> Frame:
    """Frame `index` of the loop as a BGR image: everything in it moves from one frame to the next."""
    width, height = profile.width, profile.height
    background = _gradient(width, height)
    shift = (index * 8) % width
    frame = np.ascontiguousarray(background[:, shift : shift + width])
    scale = height / 720.0
    box = max(8, int(120 * scale))
    span_x, span_y = width - box, height - box
    bx = (index * int(14 * scale + 1)) % (2 * span_x)
    by = (index * int(9 * scale + 1)) % (2 * span_y)
    bx = bx if bx < span_x else 2 * span_x - bx
    by = by if by < span_y else 2 * span_y - by
    cv2.rectangle(frame, (bx, by), (bx + box, by + box), (255, 255, 255), thickness=-1)
    cv2.rectangle(frame, (bx, by), (bx + box, by + box), (0, 0, 0), thickness=max(1, int(4 * scale)))
    font = cv2.FONT_HERSHEY_SIMPLEX
    thickness = max(1, int(3 * scale))
    label = f"{_ascii(camera_name)}  {profile.name} {width}x{height}"
    counter = f"frame {index:05d}"
    for text, row in ((label, 0.12), (counter, 0.94)):
        org = (int(24 * scale), int(height * row))
        cv2.putText(frame, text, org, font, 1.4 * scale, (0, 0, 0), thickness + 3, cv2.LINE_AA)
        cv2.putText(frame, text, org, font, 1.4 * scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return frame


@functools.lru_cache(maxsize=256)
def snapshot_jpeg(camera_name: str, profile: ProfileSpec) -> bytes:
    """A JPEG of one rendered frame of this camera's picture (cached)."""
    ok, encoded = cv2.imencode(".jpg", render_frame(camera_name, profile, 0), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {camera_name!r}")
    return bytes(encoded.tobytes())


# ---------------------------------------------------------------------------------------------------------------
# Encoding


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream, without their 3- or 4-byte start codes."""
    nals: list[bytes] = []
    starts: list[tuple[int, int]] = []  # (start code position, payload position)
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        code_at = pos - 1 if pos > 0 and data[pos - 1] == 0 else pos
        starts.append((code_at, pos + 3))
        pos = data.find(b"\x00\x00\x01", pos + 3)
    for i, (_, begin) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(data)
        nal = data[begin:end]
        if nal:
            nals.append(nal)
    return nals


def frame_durations(profile: ProfileSpec, count: int) -> list[int]:
    """Per-frame durations in 90 kHz ticks that add up without drift even when fps does not divide 90000."""
    return [round((i + 1) * RTP_CLOCK / profile.fps) - round(i * RTP_CLOCK / profile.fps) for i in range(count)]


def encode_rendered(ctx: av.VideoCodecContext, camera_name: str, profile: ProfileSpec, count: int) -> list[bytes]:
    """The loop's first `count` frames rendered and encoded by `ctx`, one access unit (Annex B) per frame. The
    profile's size, rate and bitrate are set here; the codec's own options are the caller's."""
    ctx.width, ctx.height, ctx.pix_fmt = profile.width, profile.height, "yuv420p"
    ctx.time_base = Fraction(1, profile.fps)
    ctx.framerate = Fraction(profile.fps, 1)
    ctx.bit_rate = profile.bitrate_kbps * 1000
    units: list[bytes] = []
    for index in range(count):
        yuv = cv2.cvtColor(render_frame(camera_name, profile, index), cv2.COLOR_BGR2YUV_I420)
        frame = av.VideoFrame.from_ndarray(np.asarray(yuv, dtype=np.uint8), format="yuv420p")
        frame.pts = index
        frame.time_base = ctx.time_base
        units.extend(bytes(packet) for packet in ctx.encode(frame))
    units.extend(bytes(packet) for packet in ctx.encode(None))
    if len(units) != count:
        raise RuntimeError(f"{ctx.name} returned {len(units)} access units for {count} frames")
    return units


def encode_loop(camera_name: str, profile: ProfileSpec) -> EncodedLoop:
    """Render and encode the loop (CPU-heavy, blocking: call it in a thread)."""
    count = profile.gop * LOOP_GOPS
    ctx = av.CodecContext.create("libx264", "w")
    ctx.gop_size = profile.gop
    ctx.max_b_frames = 0
    ctx.profile = "Main"
    kbps = profile.bitrate_kbps
    ctx.options = {
        "preset": "veryfast",
        "x264-params": (
            f"keyint={profile.gop}:min-keyint={profile.gop}:scenecut=0:bframes=0:repeat-headers=1:"
            f"vbv-maxrate={kbps}:vbv-bufsize={kbps}:sliced-threads=0:rc-lookahead=0:sync-lookahead=0:nal-hrd=cbr"
        ),
    }
    access_units = encode_rendered(ctx, camera_name, profile, count)
    sps = pps = b""
    frames: list[EncodedFrame] = []
    for unit, duration in zip(access_units, frame_durations(profile, count), strict=True):
        nals = [nal for nal in split_annexb(unit) if nal[0] & 0x1F != _NAL_SEI]
        for nal in nals:
            kind = nal[0] & 0x1F
            if kind == _NAL_SPS and not sps:
                sps = nal
            elif kind == _NAL_PPS and not pps:
                pps = nal
        keyframe = any(nal[0] & 0x1F == _NAL_IDR for nal in nals)
        frames.append(EncodedFrame(tuple(nals), keyframe, duration))
    if not (sps and pps and frames[0].keyframe):
        raise RuntimeError("encoder output lacks SPS, PPS or a leading keyframe")
    return EncodedLoop(profile, sps, pps, tuple(frames))


# ---------------------------------------------------------------------------------------------------------------
# Disk cache: a small header (JSON) and the NAL units, concatenated. No pickle: the file is data, never code.


def cache_file(cache_dir: Path, camera_name: str, profile: ProfileSpec) -> Path:
    key = json.dumps([FORMAT_VERSION, camera_name, profile.__dict__], sort_keys=True)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return cache_dir / f"loop-{profile.path}-{digest}.h264loop"


def _serialize(loop: EncodedLoop) -> bytes:
    header = {
        "sps": len(loop.sps),
        "pps": len(loop.pps),
        "frames": [[frame.keyframe, frame.duration, [len(nal) for nal in frame.nals]] for frame in loop.frames],
    }
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    body = b"".join([loop.sps, loop.pps, *(nal for frame in loop.frames for nal in frame.nals)])
    return b"".join([_MAGIC, struct.pack("!I", len(head)), head, body])


def _deserialize(data: bytes, profile: ProfileSpec) -> EncodedLoop:
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 4:
        raise ValueError("not a loop file")
    (head_len,) = struct.unpack_from("!I", data, len(_MAGIC))
    pos = len(_MAGIC) + 4
    header = json.loads(data[pos : pos + head_len])
    pos += head_len

    def take(size: int) -> bytes:
        nonlocal pos
        if size < 0 or pos + size > len(data):
            raise ValueError("truncated loop file")
        chunk = data[pos : pos + size]
        pos += size
        return chunk

    sps = take(int(header["sps"]))
    pps = take(int(header["pps"]))
    frames = tuple(
        EncodedFrame(tuple(take(int(size)) for size in sizes), bool(key), int(duration))
        for key, duration, sizes in header["frames"]
    )
    if pos != len(data) or not frames or not frames[0].keyframe:
        raise ValueError("inconsistent loop file")
    return EncodedLoop(profile, sps, pps, frames)


# ---------------------------------------------------------------------------------------------------------------
# The process-wide cache: one encode per (camera, profile), whatever the number of clients or event loops.


class LoopCache:
    """Loops by (camera name, profile). Thread- and asyncio-safe: concurrent callers share one encode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, ProfileSpec], concurrent.futures.Future[EncodedLoop]] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="loop-encoder"
        )
        self.encodes = 0
        """How many loops were encoded (not read from disk) in this process."""

    async def get(self, camera_name: str, profile: ProfileSpec, cache_dir: Path | None) -> EncodedLoop:
        key = (camera_name, profile)
        with self._lock:
            future = self._entries.get(key)
            owner = future is None
            if future is None:
                future = concurrent.futures.Future()
                future.set_running_or_notify_cancel()  # so a cancelled waiter cannot cancel it for the others
                self._entries[key] = future
        if owner:
            # The worker thread settles the future itself, so the work completes even if this caller is cancelled,
            # and no event loop owns it (loops come and go in tests; the loop outlives them all).
            self._executor.submit(self._produce, key, future, cache_dir)
        return await asyncio.wrap_future(future)

    def _produce(
        self, key: tuple[str, ProfileSpec], future: concurrent.futures.Future[EncodedLoop], cache_dir: Path | None
    ) -> None:
        try:
            future.set_result(self._load_or_encode(*key, cache_dir))
        except BaseException as exc:
            with self._lock:
                self._entries.pop(key, None)  # a later caller tries again
            future.set_exception(exc)

    def _load_or_encode(self, camera_name: str, profile: ProfileSpec, cache_dir: Path | None) -> EncodedLoop:
        path = cache_file(cache_dir, camera_name, profile) if cache_dir is not None else None
        if path is not None and path.is_file():
            try:
                loop = _deserialize(path.read_bytes(), profile)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("%s: ignoring unreadable loop cache %s: %s", camera_name, path, exc)
            else:
                logger.debug("%s: loaded %s loop from %s", camera_name, profile.path, path)
                return loop
        started = time.perf_counter()
        loop = encode_loop(camera_name, profile)
        with self._lock:
            self.encodes += 1
        logger.debug(
            "%s: encoded %s loop (%d frames, %d bytes) in %.2f s",
            camera_name,
            profile.path,
            len(loop.frames),
            loop.byte_size,
            time.perf_counter() - started,
        )
        if path is not None:
            try:
                write_atomically(path, _serialize(loop))
            except OSError as exc:
                logger.warning("%s: could not write loop cache %s: %s", camera_name, path, exc)
        return loop


LOOPS = LoopCache()
"""The process-wide loop cache behind `get_loop`."""


async def get_loop(camera_name: str, profile: ProfileSpec, cache_dir: Path | None) -> EncodedLoop:
    """The encoded loop of this camera and profile: from memory, from `cache_dir`, or encoded now in a thread."""
    return await LOOPS.get(camera_name, profile, cache_dir)


def encode_count() -> int:
    """Loops encoded in this process so far (tests use it to show that many clients cost one encode)."""
    return LOOPS.encodes
