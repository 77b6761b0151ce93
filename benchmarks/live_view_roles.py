"""The processes of the live-view benchmark (`benchmarks/live_view.py` starts them; each is `python -m
benchmarks.live_view_roles ROLE ...`):

- `relay`: the media side alone in its process, so its CPU time is its own. `--mode forward` is the forwarding
  core (`media.relay.Relay`, GOP cache) with `--path direct` (the fast send path, `media.direct`) or `--path stock`
  (aiortc's own sender per viewer); `--mode naive` decodes the camera once and encodes
  for every viewer (aiortc's `MediaRelay` and one H.264 encoder per viewer), the reference. A tiny HTTP signalling
  on 127.0.0.1: POST /publish and POST /view (SDP offer in, answer out), GET /stats.
- `publisher`: the camera: the simulator's 720p25 H.264 loop (2 Mbit/s, 2 s GOP) sent as pre-encoded packets at
  25 fps, paced on the loop's clock (aiortc does not encode it).
- `viewers`: N aiortc viewers that connect (ICE, DTLS, SRTP) and count the decrypted RTP packets without parsing
  them further or decoding; every second one JSON line with each viewer's frames (marker bits), lag and losses.
- `ttff`: viewers that do decode, one after the other: from `createOffer` to the first decoded frame.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import statistics
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from common.clock import SystemClock
from media.forwarding import Output, Sink
from media.peers import add_direct_sink, add_sink, source_from_track
from media.relay import Relay
from rtc import aiortc_adapter as adapter
from rtc.aiortc_adapter import LoopbackCandidates, VideoCodec
from rtc.packet_track import PacketTrack
from simulator.video import MAIN, get_loop

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO / "var" / "bench-loops"
START_CODE = b"\x00\x00\x00\x01"


def peer() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def wait_for_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()


async def exchange(session: aiohttp.ClientSession, url: str, pc: RTCPeerConnection) -> None:
    """Offer (after gathering, as aiortc does), POST it, apply the answer."""
    await pc.setLocalDescription(await pc.createOffer())
    async with session.post(url, json={"sdp": pc.localDescription.sdp, "type": "offer"}) as response:
        response.raise_for_status()
        body = await response.json()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))


# ---------------------------------------------------------------------------------------------------------------
# relay


class RelayServer:
    def __init__(self, mode: str, path: str) -> None:
        self.mode = mode
        self.path = path
        self.clock = SystemClock()
        self.relay = Relay("cam-bench", clock=self.clock, idle_timeout_s=3600, max_viewers=100_000)
        self.media_relay = MediaRelay()
        self.camera: MediaStreamTrack | None = None
        self.pcs: list[RTCPeerConnection] = []
        self.viewers = 0

    async def publish(self, request: web.Request) -> web.Response:
        offer = await request.json()
        pc = peer()
        self.pcs.append(pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if self.mode == "forward":
                source, _ = source_from_track(pc, track, name="cam-bench", clock=self.clock)
                self.relay.set_source(source)
            else:
                self.camera = track  # decoded by aiortc's receiver

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
        for transceiver in pc.getTransceivers():
            adapter.force_codecs(transceiver, VideoCodec.H264)
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp, "type": "answer"})

    async def view(self, request: web.Request) -> web.Response:
        offer = await request.json()
        cache = request.query.get("cache", "1") == "1"
        pc = peer()
        self.pcs.append(pc)
        self.viewers += 1
        name = f"v{self.viewers}"
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
        if self.mode == "forward":

            def make(output: Output | None) -> Sink:
                if cache:
                    return self.relay.add_viewer(name, output=output)
                return Sink(name, "video", clock=self.clock, output=output)

            if self.path == "direct":
                sink = add_direct_sink(pc, make)
            else:
                sink = make(None)
                add_sink(pc, sink)
            if not cache:
                sink.point(self.relay.source, use_cache=False)
        else:
            if self.camera is None:
                raise web.HTTPServiceUnavailable(text="no camera yet")
            pc.addTrack(self.media_relay.subscribe(self.camera, buffered=False))
            for transceiver in pc.getTransceivers():
                adapter.force_codecs(transceiver, VideoCodec.H264)
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp, "type": "answer"})

    async def stats(self, request: web.Request) -> web.Response:
        source = self.relay.source
        frames = source.stats.frames_in if source is not None else 0
        drops = sum(s.stats.drops for s in self.relay.viewers.values())
        ready = source is not None if self.mode == "forward" else self.camera is not None
        sinks = [
            [s.stats.frames_out, s.stats.drops, s.track.pending if s.track else 0, bool(s.track and s.track.accepting)]
            for s in self.relay.viewers.values()
        ]
        return web.json_response(
            {"ready": ready, "frames_in": frames, "viewers": self.viewers, "drops": drops, "sinks": sinks[:20]}
        )


async def run_relay(args: argparse.Namespace) -> None:
    adapter.set_loopback_candidates(LoopbackCandidates.ONLY)
    # The profile Chromium negotiates (aiortc viewers would pick AES-256-GCM, dearer to encrypt).
    adapter.prefer_srtp("SRTP_AES128_CM_SHA1_80")
    server = RelayServer(args.mode, args.path)
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/publish", server.publish)
    app.router.add_post("/view", server.view)
    app.router.add_get("/stats", server.stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, reuse_address=True)
    await site.start()
    emit({"listening": args.port})
    try:
        await wait_for_stop()
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------------------------------------------------
# publisher


async def run_publisher(args: argparse.Namespace) -> None:
    adapter.set_loopback_candidates(LoopbackCandidates.ONLY)
    loop_frames = await get_loop("bench", MAIN, CACHE_DIR)
    units = [b"".join(START_CODE + nal for nal in f.nals) for f in loop_frames.frames]
    track = PacketTrack("video", max_packets=64)
    pc = peer()
    transceiver = pc.addTransceiver(track, direction="sendonly")
    adapter.force_codecs(transceiver, VideoCodec.H264)
    async with aiohttp.ClientSession() as session:
        await exchange(session, f"{args.url}/publish", pc)
    emit({"publishing": True, "bitrate_kbps": MAIN.bitrate_kbps, "frames": len(units)})
    stopping = asyncio.ensure_future(wait_for_stop())
    loop = asyncio.get_running_loop()
    index = 0
    next_at = loop.time()
    skipped = 0
    while not stopping.done():
        if not track.push(units[index % len(units)], index * 3600):
            skipped += 1
        index += 1
        next_at += 1 / MAIN.fps
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    emit({"sent": index, "skipped": skipped})
    await pc.close()


# ---------------------------------------------------------------------------------------------------------------
# counting viewers


class Count:
    """What one viewer received, binned by second."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.first_frame: float | None = None
        """When the first frame was complete (time.monotonic, comparable across processes on Linux)."""
        self.frames = 0
        self.packets = 0
        self.lost = 0
        self.last_seq: int | None = None
        self.base: float | None = None
        self.lag_max = 0.0

    def packet(self, data: bytes) -> None:
        if len(data) < 12:
            return
        self.packets += 1
        seq, ts = struct.unpack_from("!HI", data, 2)
        if self.last_seq is not None:
            gap = (seq - self.last_seq) & 0xFFFF
            if 1 < gap < 0x8000:
                self.lost += gap - 1
            if gap == 0 or gap >= 0x8000:
                return
        self.last_seq = seq
        if data[1] & 0x80:
            now = time.monotonic()
            self.frames += 1
            if self.first_frame is None:
                self.first_frame = now
            # Lag: how much later than its timestamp says a frame arrives, against the earliest seen.
            d = now - ts / 90_000
            if self.base is None or d < self.base:
                self.base = d
            self.lag_max = max(self.lag_max, d - self.base)

    def take(self) -> list[float]:
        out = [self.frames, round(self.lag_max * 1000, 1), self.lost, round(self.first_frame or -1.0, 4)]
        self.frames = 0
        self.lag_max = 0.0
        self.lost = 0
        return out


async def run_viewers(args: argparse.Namespace) -> None:
    adapter.set_loopback_candidates(LoopbackCandidates.ONLY)
    counts: list[Count] = []
    pcs: list[RTCPeerConnection] = []
    started = time.monotonic()

    async def one(session: aiohttp.ClientSession, delay: float) -> None:
        await asyncio.sleep(delay)  # spreads the joins over --spread seconds
        pc = peer()
        pcs.append(pc)
        count = Count(time.monotonic())
        counts.append(count)
        transceiver = pc.addTransceiver("video", direction="recvonly")
        adapter.force_codecs(transceiver, VideoCodec.H264)
        adapter.count_decrypted_rtp(pc, count.packet)
        await exchange(session, f"{args.url}/view", pc)

    async with aiohttp.ClientSession() as session:
        spread = args.spread / max(1, args.count)
        await asyncio.gather(*(one(session, i * spread) for i in range(args.count)))
    first_start = min(c.started for c in counts)
    emit({"joined": args.count, "s": round(time.monotonic() - started, 3), "first_start": first_start})
    stopping = asyncio.ensure_future(wait_for_stop())
    loop = asyncio.get_running_loop()
    tick = loop.time()
    while not stopping.done():
        tick += 1.0
        await asyncio.wait([stopping], timeout=max(0.0, tick - loop.time()))
        emit({"t": time.monotonic(), "v": [c.take() for c in counts]})
    for pc in pcs:
        with contextlib.suppress(Exception):
            await pc.close()


# ---------------------------------------------------------------------------------------------------------------
# time to first frame


async def run_ttff(args: argparse.Namespace) -> None:
    adapter.set_loopback_candidates(LoopbackCandidates.ONLY)
    samples: list[float] = []
    waiters: list[asyncio.Future[None]] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(args.count):
            # Start at a random point of the 2 s GOP (back-to-back samples would lock to the keyframe's phase).
            await asyncio.sleep(random.uniform(0, 2.0))
            pc = peer()
            first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

            @pc.on("track")
            def on_track(track: MediaStreamTrack, first: asyncio.Future[float] = first) -> None:
                async def wait_frame() -> None:
                    await track.recv()
                    if not first.done():
                        first.set_result(time.monotonic())

                waiters.append(asyncio.ensure_future(wait_frame()))

            transceiver = pc.addTransceiver("video", direction="recvonly")
            adapter.force_codecs(transceiver, VideoCodec.H264)
            t0 = time.monotonic()
            await exchange(session, f"{args.url}/view?cache={args.cache}", pc)
            t1 = await asyncio.wait_for(first, 10)
            samples.append((t1 - t0) * 1000)
            await pc.close()
    emit({"ttff_ms": [round(s, 1) for s in samples], "p50": round(statistics.median(samples), 1)})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="role", required=True)
    relay = sub.add_parser("relay")
    relay.add_argument("--port", type=int, required=True)
    relay.add_argument("--mode", choices=["forward", "naive"], default="forward")
    relay.add_argument("--path", choices=["stock", "direct"], default="direct", help="send path when forwarding")
    publisher = sub.add_parser("publisher")
    publisher.add_argument("--url", required=True)
    viewers = sub.add_parser("viewers")
    viewers.add_argument("--url", required=True)
    viewers.add_argument("--count", type=int, required=True)
    viewers.add_argument("--spread", type=float, default=0.0, help="seconds over which the viewers join")
    ttff = sub.add_parser("ttff")
    ttff.add_argument("--url", required=True)
    ttff.add_argument("--count", type=int, default=20)
    ttff.add_argument("--cache", choices=["0", "1"], default="1")
    args = parser.parse_args(argv)
    runner = {"relay": run_relay, "publisher": run_publisher, "viewers": run_viewers, "ttff": run_ttff}[args.role]
    asyncio.run(runner(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
