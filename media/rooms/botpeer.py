"""A meeting participant in Python (aiortc), for tests and the benchmark: it speaks `protocol.meeting` like the
page does, publishes a pre-encoded VP8 loop and an Opus tone without encoding anything at run time, and counts
what it receives per m-line without decoding (through the adapter's tap).

It is not a product part: the browser page is the participant people use. It lives here, next to the protocol
it speaks, so that tests and `benchmarks/meetings.py` share one implementation.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import functools
import math
import struct
import time
from collections import defaultdict
from dataclasses import dataclass, field

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from protocol.meeting import (
    SERVER_MESSAGE,
    Closed,
    Codec,
    Hello,
    Muted,
    PublishAnswer,
    PublishOffer,
    Roster,
    ServerMessage,
    Slots,
    Source,
    Speakers,
    SubscribeAnswer,
    SubscribeOffer,
    TrackInfo,
    Welcome,
)
from rtc.aiortc_adapter import (
    ReceivedFrame,
    ReceiverTap,
    VideoCodec,
    force_codecs,
    intercept_keyframe_requests,
    tap_receiver,
)
from rtc.packet_track import PacketTrack

STAMP = struct.Struct("!4sd")
"""With `stamp=True`, the publisher appends a marker and its send time (time.monotonic, one clock for every
process on the machine) to each video frame; receivers that do not decode read it back to measure latency."""
_STAMP_MARK = b"KNts"


def stamp(now: float) -> bytes:
    """The trailer appended to a stamped frame."""
    return STAMP.pack(_STAMP_MARK, now)


def read_stamp(data: bytes) -> float | None:
    """The send time a stamped frame carries, or None when its end is not a stamp (a frame a receiver put
    together with packets missing must not yield a time read from video bytes)."""
    if len(data) <= STAMP.size:
        return None
    mark, sent = STAMP.unpack(data[-STAMP.size :])
    return float(sent) if mark == _STAMP_MARK else None


@functools.lru_cache(maxsize=4)
def vp8_loop(
    width: int = 320, height: int = 240, fps: int = 25, seconds: float = 2.0, kbps: int = 300
) -> tuple[bytes, ...]:
    """A VP8 loop of moving bars, encoded once per process; its first frame is a keyframe (one per loop)."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = fractions.Fraction(1, fps)
    codec.bit_rate = kbps * 1000
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "g": str(int(fps * seconds))}
    frames: list[bytes] = []
    count = int(fps * seconds)
    noise = np.random.default_rng(7).integers(0, 255, size=(count, height // 8, width // 8, 3), dtype=np.uint8)
    for index in range(count):
        # Coarse noise that changes every frame makes the encoder spend its bit rate, as a real camera does.
        image = np.repeat(np.repeat(noise[index], 8, axis=0), 8, axis=1) // 2
        x = (index * 7) % width
        image[:, x : x + 20, 1] = 255
        image[(index * 3) % height : (index * 3) % height + 10, :, 0] = 200
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        for packet in codec.encode(frame):
            frames.append(bytes(packet))
    for packet in codec.encode(None):
        frames.append(bytes(packet))
    return tuple(frames)


@functools.lru_cache(maxsize=2)
def h264_loop(
    width: int = 320, height: int = 240, fps: int = 25, seconds: float = 2.0, kbps: int = 300
) -> tuple[bytes, ...]:
    """An H.264 loop (constrained baseline, Annex-B, SPS and PPS before the one IDR frame), encoded once."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = fractions.Fraction(1, fps)
    codec.bit_rate = kbps * 1000
    codec.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        "g": str(int(fps * seconds)),
        "bf": "0",
    }
    rng = np.random.default_rng(11)
    frames: list[bytes] = []
    for index in range(int(fps * seconds)):
        image = rng.integers(0, 255, size=(height // 8, width // 8, 3), dtype=np.uint8)
        image = np.repeat(np.repeat(image, 8, axis=0), 8, axis=1) // 2
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        frames += [bytes(p) for p in codec.encode(frame)]
    frames += [bytes(p) for p in codec.encode(None)]
    return tuple(frames)


@functools.lru_cache(maxsize=2)
def opus_loop(seconds: float = 1.0, tone_hz: float = 440.0) -> tuple[bytes, ...]:
    """Opus packets (20 ms, 48 kHz mono) of a tone (silence with `tone_hz=0`), encoded once per process."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = 48_000, "mono", "s16"
    codec.bit_rate = 32_000
    packets: list[bytes] = []
    samples = 960
    for index in range(int(seconds * 50)):
        t = (np.arange(samples) + index * samples) / 48_000
        pcm = (np.sin(2 * math.pi * tone_hz * t) * 12_000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 48_000
        frame.pts = index * samples
        packets += [bytes(p) for p in codec.encode(frame)]
    return tuple(packets)


@dataclass
class Received:
    frames: int = 0
    bytes: int = 0
    latencies: list[float] = field(default_factory=list)


class BotPeer:
    """Joins a meeting over its WebSocket, publishes (unless told not to) and counts what it receives."""

    def __init__(
        self,
        ws_url: str,
        token: str,
        *,
        audio: bool = True,
        video: bool = True,
        fps: int = 25,
        video_frames: tuple[bytes, ...] | None = None,
        stamp: bool = False,
        tone: bool = True,
        codec: Codec = Codec.VP8,
    ) -> None:
        self.ws_url = ws_url
        self.token = token
        self.audio = audio
        self.video = video
        self.fps = fps
        self.stamp = stamp
        self.tone = tone
        self.codec = codec
        """False: the microphone sends Opus silence (3-byte packets), so the node does not count it as speech."""
        self._video_frames = video_frames
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._publish: RTCPeerConnection | None = None
        self._subscribe: RTCPeerConnection | None = None
        self._tracks: list[PacketTrack] = []
        self.welcome: Welcome | None = None
        self.closed: Closed | None = None
        self.roster: Roster | None = None
        self.slots: dict[str, tuple[str | None, Source | None]] = {}
        self.speakers: list[str] = []
        self.muted: bool | None = None
        self.errors: list[str] = []
        self.received: dict[str, Received] = defaultdict(Received)
        """mid of the subscribe connection -> what came in on it."""
        self.plis_received = 0
        """Keyframe requests (PLI/FIR) that reached this publisher's video sender."""
        self.messages: list[ServerMessage] = []
        self._taps: dict[str, ReceiverTap] = {}
        self._welcomed = asyncio.Event()
        self._answered = asyncio.Event()

    @property
    def id(self) -> str:
        assert self.welcome is not None
        return self.welcome.participant

    async def join(self, timeout: float = 20.0) -> None:  # noqa: ASYNC109
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.ws_url, max_msg_size=1 << 20)
        await self._ws.send_str(Hello(token=self.token).model_dump_json())
        self._tasks.append(asyncio.create_task(self._read()))
        async with asyncio.timeout(timeout):
            while not self._welcomed.is_set():
                if self.closed is not None:
                    return
                await asyncio.wait({asyncio.ensure_future(self._welcomed.wait())}, timeout=0.1)
        assert self.welcome is not None
        if self.welcome.may_publish and (self.audio or self.video):
            await self._start_publishing(timeout)

    async def send_json(self, text: str) -> None:
        assert self._ws is not None
        await self._ws.send_str(text)

    async def send(self, message: object) -> None:
        await self.send_json(message.model_dump_json())  # type: ignore[attr-defined]

    async def _read(self) -> None:
        assert self._ws is not None
        async for frame in self._ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            message = SERVER_MESSAGE.validate_json(frame.data)
            self.messages.append(message)
            match message:
                case Welcome():
                    self.welcome = message
                    self._welcomed.set()
                case PublishAnswer():
                    assert self._publish is not None
                    await self._publish.setRemoteDescription(RTCSessionDescription(sdp=message.sdp, type="answer"))
                    self._answered.set()
                case SubscribeOffer():
                    await self._on_offer(message)
                case Slots():
                    self.slots = {mid: (slot.participant, slot.source) for mid, slot in message.slots.items()}
                case Roster():
                    self.roster = message
                case Speakers():
                    self.speakers = message.ids
                case Muted():
                    self.muted = message.muted
                case Closed():
                    self.closed = message
                case _:
                    if getattr(message, "type", "") == "error":
                        self.errors.append(getattr(message, "code", ""))

    async def _start_publishing(self, timeout: float) -> None:  # noqa: ASYNC109
        pc = self._publish = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        infos: list[tuple[object, Source]] = []
        if self.audio:
            track = PacketTrack("audio")
            transceiver = pc.addTransceiver(track, direction="sendonly")
            force_codecs(transceiver)
            self._tracks.append(track)
            infos.append((transceiver, Source.MICROPHONE))
            self._tasks.append(asyncio.create_task(self._pace_audio(track)))
        if self.video:
            track = PacketTrack("video")
            transceiver = pc.addTransceiver(track, direction="sendonly")
            force_codecs(transceiver, VideoCodec(self.codec.value))
            intercept_keyframe_requests(transceiver.sender, self._on_pli)
            self._tracks.append(track)
            infos.append((transceiver, Source.CAMERA))
            self._tasks.append(asyncio.create_task(self._pace_video(track)))
        offer = await pc.createOffer()
        await pc.setLocalDescription(offer)
        tracks = [TrackInfo(mid=t.mid, source=s) for t, s in infos]  # type: ignore[attr-defined]
        await self.send(PublishOffer(sdp=pc.localDescription.sdp, tracks=tracks))
        async with asyncio.timeout(timeout):
            await self._answered.wait()

    def _on_pli(self) -> None:
        self.plis_received += 1

    async def _pace_video(self, track: PacketTrack) -> None:
        frames = self._video_frames or (h264_loop() if self.codec is Codec.H264 else vp8_loop())
        interval = 1.0 / self.fps
        step = 90_000 // self.fps
        start = time.monotonic()
        index = 0
        while True:
            data = frames[index % len(frames)]
            if self.stamp:
                data = data + stamp(time.monotonic())
            track.push(data, index * step)
            index += 1
            delay = start + index * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _pace_audio(self, track: PacketTrack) -> None:
        packets = opus_loop(tone_hz=440.0 if self.tone else 0.0)
        start = time.monotonic()
        index = 0
        while True:
            track.push(packets[index % len(packets)], index * 960)
            index += 1
            delay = start + index * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _on_offer(self, offer: SubscribeOffer) -> None:
        if self._subscribe is None:
            pc = self._subscribe = RTCPeerConnection(
                RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
            )

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
                mid = transceiver.mid or "?"
                stamped = self.stamp and track.kind == "video"

                def on_frame(frame: ReceivedFrame) -> None:
                    entry = self.received[mid]
                    entry.frames += 1
                    entry.bytes += len(frame.data)
                    sent = read_stamp(frame.data) if stamped else None
                    if sent is not None and len(entry.latencies) < 100_000:
                        entry.latencies.append(time.monotonic() - sent)

                self._taps[mid] = tap_receiver(pc, track, on_frame)

        await self._subscribe.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        answer = await self._subscribe.createAnswer()
        await self._subscribe.setLocalDescription(answer)
        await self.send(SubscribeAnswer(version=offer.version, sdp=self._subscribe.localDescription.sdp))

    def frames_from(self, participant: str, source: Source) -> int:
        """Frames received on the m-line that carries `participant`'s `source` now."""
        return sum(
            self.received[mid].frames for mid, (pid, src) in self.slots.items() if pid == participant and src is source
        )

    async def request_keyframe(self, participant: str, source: Source) -> bool:
        """Send a PLI for the m-line carrying `participant`'s `source` (as a browser does after a loss)."""
        for mid, (pid, src) in self.slots.items():
            if pid == participant and src is source and mid in self._taps:
                return await self._taps[mid].request_keyframe()
        return False

    @property
    def receive_gaps(self) -> int:
        """Times a receiving m-line gave up waiting for lost packets and skipped ahead (its jitter buffer's gaps)."""
        return sum(tap.gaps for tap in self._taps.values())

    def total_frames(self, kind: str) -> int:
        return sum(
            self.received[mid].frames
            for mid, (_pid, src) in self.slots.items()
            if src is not None and ((src is Source.MICROPHONE) == (kind == "audio"))
        )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for track in self._tracks:
            track.end()
        for pc in (self._publish, self._subscribe):
            if pc is not None:
                await pc.close()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
