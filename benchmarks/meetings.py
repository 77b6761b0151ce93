"""Meetings benchmark: forwarded video streams per core on the media node, a 1-to-N broadcast, the naive path
(decode, then one encode per subscriber) as the reference, and the latency the node adds.

    .venv/bin/python -m benchmarks.meetings [--quick] [--seconds 6] [--viewers 100] [--max-meetings 3] [--no-pin]
        [--latency-streams 150]

The media node runs as its own process (`python -m media serve`, meeting extension, loopback ICE candidates), so
its CPU time is read alone from /proc. This process is the load: aiortc participants (`media.rooms.botpeer`)
that publish a pre-encoded VP8 loop (640x360, 25 fps, about 1 Mbit/s; nothing is encoded at run time) and
receive without decoding (frames are taken before aiortc's decoder and counted). Audio is off: the figures are
video streams.

1. Meetings (n participants each receive the n-1 others: n(n-1) forwarded streams), growing from one meeting of
   4 to one of 10 (90 streams), then 2, 3, 4 meetings of 10 at once, until the frame rate or the lag degrades
   (delivered frames under 95% of those sent, or p95 lag over 200 ms), or `--max-meetings`.
2. Broadcast: one presenter and `--viewers` receive-only participants in one room.
3. Added latency, at half the highest load that did not degrade and at least at `--latency-streams` (150, half
   the goal of 300), in meetings of up to 10 (e.g. 10 + 9 parties: 162 streams), measured twice in the same run
   on the same rooms: the node forwarding frame by frame (what it did before: each frame once it is whole) and
   packet by packet (its default: each RTP packet as it arrives). By a probe in the node process (`--probed-node`:
   the node as `python -m media serve` runs it, plus the probes). Packet in to packet out (the JSON's
   `added_latency_ms_*`, packet by packet; `by_frame_added_latency_ms_*` frame by frame): per incoming RTP packet of
   a publisher and per subscriber, from the moment its datagram reaches the node's Python code to the return of the
   `sendto` of the matching outgoing packet; this includes the wait in the node's receive queue (and, frame by
   frame, for the rest of the frame), not the kernel's socket buffers. Packet fan-out (`packet_fanout_ms_*`): per
   incoming packet, the time to hand it to every subscriber. Frame by frame also: the wait for the frame's last
   packet (`by_frame_frame_wait_ms_*`), the node's part after it (`by_frame_after_frame_ms_*`) and the fan-out per
   frame (`fanout_latency_ms_*`). End to end (`e2e_added_latency_ms_*`, packet by packet): every
   frame carries its send time (time.monotonic, one clock for all processes) after the VP8 data, read back by
   the receivers; a direct pair of the same aiortc endpoints beside the load (no node) is the baseline; the
   difference of the percentiles includes the load generator's own scheduling of its publishers and receivers.
   The publishers are aiortc senders of pre-encoded frames: each frame's packets leave back to back, as from an
   encoder (aiortc's sender loop does not yield between a frame's packets). A paced sender (spreading a frame's
   packets over time) adds its spread to every packet's latency frame by frame (the frame waits for its last
   packet) and nothing packet by packet.
4. Naive reference: a minimal relay (`--naive-node`, its own process) that lets aiortc decode each publisher's
   video and encode it again for every subscriber (aiortc's MediaRelay), with a 3-party meeting (6 encodes):
   the CPU per delivered stream of what forwarding avoids.

"Streams per core" = forwarded streams delivered at full rate divided by the node's CPU (cores busy over the
measurement). The ramp and the broadcast run unpinned, so that the load generator may use both CPUs and the ramp
is not cut short by the generator rather than the node; for the latency steps and the naive reference the node
(or the naive relay) is pinned to the first CPU and this process to the second (`os.sched_setaffinity`; `--no-pin`
to leave them free throughout); other work on the machine is not pinned. The machine
is shared (2 cores): `machine_busy_cores` and `other_busy_cores` say how busy it was,
and `machine_saturated` marks a step during which every core was busy (a step that degrades then says more about
the machine than about the node: the node's own CPU is in `node_cores`).
Prints conditions and a table, then a JSON last line with `forwarded_streams_per_core`,
`broadcast_streams_per_core`, `naive_streams_per_core`, `added_latency_ms_p50`, `added_latency_ms_p99`, `path`
("forward": encoded frames forwarded as they are) and the details.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

from common.clock import SystemClock
from media.rooms.botpeer import BotPeer, read_stamp, stamp, vp8_loop
from protocol.media import MEETING_WS_PATH, MediaTokens, MeetingRole, TokenKind
from protocol.meeting import Source
from rtc import aiortc_adapter as adapter
from rtc.aiortc_adapter import LoopbackCandidates, ReceivedFrame, VideoCodec
from rtc.packet_track import PacketTrack

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
FPS = 25
KBPS = 900
WIDTH, HEIGHT = 640, 360
PARTIES = 10
NODE_ID = "bench-node"
TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _machine_busy() -> tuple[float, float]:
    """(busy seconds, total seconds) over all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


@dataclass
class Window:
    """CPU of the node, this process and the machine over one measurement."""

    node_pid: int
    start: float = 0.0
    node0: float = 0.0
    self0: float = 0.0
    busy0: float = 0.0
    seconds: float = 0.0
    node_cores: float = 0.0
    self_cores: float = 0.0
    machine_cores: float = 0.0

    def begin(self) -> None:
        self.start = time.monotonic()
        self.node0 = _cpu_seconds(self.node_pid)
        self.self0 = time.process_time()
        self.busy0 = _machine_busy()[0]

    def end(self) -> None:
        self.seconds = time.monotonic() - self.start
        self.node_cores = (_cpu_seconds(self.node_pid) - self.node0) / self.seconds
        self.self_cores = (time.process_time() - self.self0) / self.seconds
        self.machine_cores = (_machine_busy()[0] - self.busy0) / self.seconds


@dataclass
class Step:
    name: str
    streams: int
    window: Window
    frames_expected: float
    frames_received: int
    latencies: list[float] = field(default_factory=list)
    gaps: int = 0
    """Times the receivers' jitter buffers gave up on lost packets over the window (each stalls that stream)."""
    probe: dict[str, dict[str, float]] = field(default_factory=dict)
    """The node's own figures over the window (`packets`: packet in to packet out; `fanout`: frame complete to sent
    to every subscriber), when probed."""

    @property
    def delivered(self) -> float:
        return self.frames_received / self.frames_expected if self.frames_expected else 0.0

    def latency_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def degraded(self) -> bool:
        return self.delivered < 0.95 or self.latency_ms(0.95) > 200

    @property
    def per_core(self) -> float:
        return self.streams * min(1.0, self.delivered) / self.window.node_cores if self.window.node_cores else 0.0

    def row(self) -> dict[str, Any]:
        w = self.window
        return {
            "step": self.name, "streams": self.streams, "delivered": round(self.delivered, 3),
            "node_cores": round(w.node_cores, 3), "streams_per_core": round(self.per_core, 1),
            "lag_p50_ms": round(self.latency_ms(0.5), 2), "lag_p99_ms": round(self.latency_ms(0.99), 2),
            "receiver_gaps": self.gaps,
            "load_cores": round(w.self_cores, 3), "machine_busy_cores": round(w.machine_cores, 3),
            "other_busy_cores": round(max(0.0, w.machine_cores - w.node_cores - w.self_cores), 3),
            "machine_saturated": w.machine_cores > 0.95 * (os.cpu_count() or 1),
        }  # fmt: skip


# ----- the node under test -----


@contextlib.asynccontextmanager
async def media_node(workdir: Path, secret: bytes, freeze_gc: bool = True) -> AsyncIterator[tuple[int, int]]:
    """The node (`--probed-node`: the app `python -m media serve` builds, plus the forwarding probe) on a free
    port: (port, pid)."""
    port = _free_port()
    secret_file = workdir / "media-secret.key"
    secret_file.write_text(secret.hex())
    secret_file.chmod(0o600)
    config = workdir / "node.toml"
    config.write_text(
        f'node_id = "{NODE_ID}"\nhost = "127.0.0.1"\nport = {port}\nmedia_secret_file = "{secret_file}"\n'
        "loopback_candidates = true\ncapacity_streams = 100000\ntoken_requests_per_minute = 100000\n"
        'log_level = "WARNING"\n'
    )
    log = (workdir / "node.log").open("w")
    process = subprocess.Popen(  # noqa: ASYNC220 (a child for the whole run)
        [PYTHON, "-m", "benchmarks.meetings", "--probed-node", str(config), *([] if freeze_gc else ["--no-gc-freeze"])],
        cwd=REPO, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        await _wait_http(f"http://127.0.0.1:{port}/healthz", process)
        yield port, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


async def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{url}: the process exited with {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout} s")
            await asyncio.sleep(0.2)


class Meetings:
    def __init__(self, port: int, tokens: MediaTokens) -> None:
        self.port = port
        self.tokens = tokens

    def peer(self, room: str, name: str, *, publish: bool) -> BotPeer:
        token = self.tokens.issue(
            kind=TokenKind.MEETING, node=NODE_ID, room=room, subject=f"bench:{name}", ttl=timedelta(minutes=5),
            name=name, role=MeetingRole.PARTICIPANT,
        )  # fmt: skip
        url = f"ws://127.0.0.1:{self.port}{MEETING_WS_PATH.format(room=room)}"
        return BotPeer(url, token, audio=False, video=publish, fps=FPS, video_frames=_loop(), stamp=True)


def _loop() -> tuple[bytes, ...]:
    return vp8_loop(WIDTH, HEIGHT, FPS, 2.0, KBPS)


async def _join_all(peers: Sequence[BotPeer], batch: int = 10) -> None:
    for i in range(0, len(peers), batch):
        await asyncio.gather(*(peer.join(timeout=60) for peer in peers[i : i + batch]))


async def _wait_flowing(receivers: Sequence[BotPeer], publishers: Sequence[BotPeer], timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        ok = all(r.frames_from(p.id, Source.CAMERA) > 0 for r in receivers for p in publishers if p is not r)
        if ok:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("not every stream started")
        await asyncio.sleep(0.2)


def _received(receivers: Sequence[BotPeer]) -> int:
    return sum(entry.frames for r in receivers for entry in r.received.values())


def _clear_latencies(receivers: Sequence[BotPeer]) -> None:
    for r in receivers:
        for entry in r.received.values():
            entry.latencies.clear()


def _latencies(receivers: Sequence[BotPeer]) -> list[float]:
    return [lat for r in receivers for entry in r.received.values() for lat in entry.latencies]


async def measure(
    name: str,
    node_pid: int,
    receivers: Sequence[BotPeer],
    publishers: Sequence[BotPeer],
    streams: int,
    seconds: float,
    direct: list[float] | None = None,
    receivers_for_count: Sequence[BotPeer] = (),
    probe_port: int | None = None,
) -> Step:
    """One measurement window; with `direct`, a direct pair (no node) runs in this process meanwhile, under the
    same load, and its latencies are appended there. `receivers_for_count`: count these (flow already checked)."""
    await _wait_flowing(receivers, publishers, timeout=60)
    receivers = receivers_for_count or receivers
    # Past the start (joins, renegotiations, GOP caches, first keyframes): a steady state, longer for more streams.
    await asyncio.sleep(1.0 + streams / 60)
    pair = asyncio.create_task(direct_latency(seconds)) if direct is not None else None
    if pair is not None:
        await asyncio.sleep(2.0)  # the pair's own start
    _clear_latencies(receivers)
    window = Window(node_pid)
    before = _received(receivers)
    gaps_before = sum(r.receive_gaps for r in receivers)
    if probe_port is not None:
        await _probe(probe_port)  # from now on
    window.begin()
    await asyncio.sleep(seconds)
    window.end()
    received = _received(receivers) - before
    probe = await _probe(probe_port) if probe_port is not None else {}
    if pair is not None and direct is not None:
        direct.extend(await pair)
    gaps = sum(r.receive_gaps for r in receivers) - gaps_before
    return Step(name, streams, window, streams * FPS * window.seconds, received, _latencies(receivers), gaps, probe)


RAMP = ((1, 4), (1, 6), (1, 8), (1, 10), (2, 10), (3, 10), (4, 10))
"""(meetings, parties each): 12, 30, 56, 90, 180, 270, 360 forwarded streams."""


async def meeting_step(meetings: Meetings, node_pid: int, count: int, parties: int, seconds: float) -> Step:
    peers = [
        meetings.peer(f"meet-{count}x{parties}-{m}", f"p{m}-{i}", publish=True)
        for m in range(count)
        for i in range(parties)
    ]
    try:
        await _join_all(peers)
        rooms = [peers[m * parties : (m + 1) * parties] for m in range(count)]
        for room in rooms:
            await _wait_flowing(room, room, timeout=60)
        return await measure(f"{count} x {parties}-party", node_pid, [], [], count * parties * (parties - 1),
                             seconds, receivers_for_count=peers)  # fmt: skip
    finally:
        await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)


async def broadcast_step(meetings: Meetings, node_pid: int, viewers: int, seconds: float) -> Step:
    presenter = meetings.peer("meet-bcast-1", "presenter", publish=True)
    audience = [meetings.peer("meet-bcast-1", f"v{i}", publish=False) for i in range(viewers)]
    try:
        await _join_all([presenter])
        await _join_all(audience)
        return await measure(f"1 -> {viewers}", node_pid, audience, [presenter], viewers, seconds)
    finally:
        await asyncio.gather(presenter.close(), *(peer.close() for peer in audience), return_exceptions=True)


# ----- the node, with a probe on its forwarding -----

PROBE_PATH = "/bench/forwarding-latency"
MODE_PATH = "/bench/forwarding-mode"
"""`POST ?by_packet=1|0&probe=1|0`: rooms opened from now on forward packet by packet (the node's default) or frame
by frame; the per-packet probes on or off (off until asked)."""


def serve_probed_node(config_path: Path, freeze_gc: bool = True) -> None:
    """The node as `python -m media serve` runs it (`media.node.cli.serve`: `build_app`, default extensions,
    `gc.freeze()` once listening unless `freeze_gc` is False), and two probes; `GET PROBE_PATH` answers the
    percentiles since the last call.

    Packet in to packet out (`packets`): every RTP packet a publisher sends is timed when its datagram reaches the
    node's Python code (`rtc.aiortc_adapter.probe_rtp_arrivals`) and keyed by (SSRC, RTP timestamp); when the
    tap emits the frame, its packets' arrival times (in sequence order) are attached to the frame's bytes object,
    which every subscriber's direct output sends; there the time each `sendto` returned is recorded
    (`probe_direct_sends`), and incoming packet k is matched with the subscriber's outgoing packet k (the last
    one if the frame went out in fewer packets): one sample per incoming packet and subscriber. It includes the
    wait for the rest of the frame and in the node's receive queue; not the time in the kernel's socket buffers.

    Of that, the wait for the rest of the frame (`frame_wait`): per incoming packet, from its arrival to the
    arrival of the frame's last packet (the publisher's spread, not the node's work). The node's own part
    (`after_frame`): per outgoing packet, from the arrival of its frame's last packet to its `sendto` returning
    (the node's receive queue, reassembly and fan-out).

    Fan-out (`fanout`): per frame, from the moment the node has it whole until its packets have been handed to the
    kernel for every subscriber (`ForwardingPlane._push` sends synchronously on the fast path)."""
    from media import direct
    from media.node import cli
    from media.node.app import build_app
    from media.node.config import load_media_secret, load_node_config
    from media.rooms import forward

    fanout: list[float] = []
    packets: list[float] = []
    waits: list[float] = []
    after_frame: list[float] = []
    packet_fanout: list[float] = []
    arrivals: dict[tuple[int, int], list[tuple[int, float]]] = {}
    frames: dict[int, tuple[bytes, list[float]]] = {}
    sending: list[list[float] | None] = [None]
    arrived: list[float | None] = [None]
    mode = {"by_packet": True}

    def on_packet(ssrc: int, seq: int, timestamp: int, arrival: float) -> None:
        if mode["by_packet"]:
            return
        times = arrivals.get((ssrc, timestamp))
        if times is None:
            if len(arrivals) >= 4096:
                del arrivals[next(iter(arrivals))]
            times = arrivals[(ssrc, timestamp)] = []
        times.append((seq, arrival))

    emitting, arriving = adapter.probe_rtp_arrivals(on_packet)

    def on_sent(sent: list[float]) -> None:
        times = sending[0]
        if times is None or not sent or len(packets) >= 5_000_000:
            return
        last = len(sent) - 1
        packets.extend(sent[min(k, last)] - arrival for k, arrival in enumerate(times))
        complete = max(times)
        after_frame.extend(t - complete for t in sent)

    adapter.probe_direct_sends(on_sent)
    original_push = forward.ForwardingPlane._push
    original_push_packet = forward.ForwardingPlane._push_packet
    original_send = direct.DirectOutput._send
    original_sender_send = adapter.DirectSender.send
    original_plane_init = forward.ForwardingPlane.__init__

    def plane_init(self: forward.ForwardingPlane, *args: Any, **kwargs: Any) -> None:
        kwargs["by_packet"] = mode["by_packet"]
        original_plane_init(self, *args, **kwargs)

    def probed_push(self: forward.ForwardingPlane, source: Any, frame: ReceivedFrame) -> None:
        if self.by_packet:
            original_push(self, source, frame)
            return
        start = time.perf_counter()
        key = emitting() if source.kind == "video" else None
        received = arrivals.pop(key, None) if key is not None else None
        if received:
            first = received[0][0]
            ordered = sorted(received, key=lambda p: (p[0] - first) & 0xFFFF)
            if len(frames) >= 256:
                del frames[next(iter(frames))]
            frames[id(frame.data)] = (frame.data, [t for _, t in ordered])
            if len(waits) < 1_000_000:
                last = max(t for _, t in ordered)
                waits.extend(last - t for _, t in ordered)
        original_push(self, source, frame)
        if source.kind == "video" and len(fanout) < 1_000_000:
            fanout.append(time.perf_counter() - start)

    def probed_push_packet(self: forward.ForwardingPlane, source: Any, packet: Any) -> None:
        start = time.perf_counter()
        arrived[0] = arriving()
        try:
            original_push_packet(self, source, packet)
        finally:
            arrived[0] = None
        if len(packet_fanout) < 1_000_000:
            packet_fanout.append(time.perf_counter() - start)

    def probed_sender_send(self: adapter.DirectSender, packet: bytes, seq: int) -> None:
        original_sender_send(self, packet, seq)
        arrival = arrived[0]
        if arrival is not None and len(packets) < 5_000_000:
            packets.append(time.perf_counter() - arrival)

    def probed_send(self: direct.DirectOutput, data: bytes, pts: int, now: float) -> None:
        entry = frames.get(id(data))
        sending[0] = entry[1] if entry is not None and entry[0] is data else None
        try:
            original_send(self, data, pts, now)
        finally:
            sending[0] = None

    forward.ForwardingPlane.__init__ = plane_init  # type: ignore[method-assign]

    def probe_packets(on: bool) -> None:
        """The per-packet probes cost a call and a clock read per packet and subscriber: only while measuring
        latency, not while the ramp measures streams per core."""
        forward.ForwardingPlane._push_packet = probed_push_packet if on else original_push_packet  # type: ignore[method-assign]
        adapter.DirectSender.send = probed_sender_send if on else original_sender_send  # type: ignore[method-assign]

    forward.ForwardingPlane._push = probed_push  # type: ignore[method-assign]
    direct.DirectOutput._send = probed_send  # type: ignore[method-assign]
    config = load_node_config(config_path)
    secret = load_media_secret(config.media_secret_file)
    app = build_app(config, secret)

    def summary(samples: list[float]) -> dict[str, float]:
        ordered = sorted(samples)
        samples.clear()
        if not ordered:
            return {"count": 0}
        return {"count": len(ordered), "p50_ms": _quantile(ordered, 0.5), "p99_ms": _quantile(ordered, 0.99),
                "max_ms": ordered[-1] * 1000}  # fmt: skip

    async def probe(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "fanout": summary(fanout),
                "packets": summary(packets),
                "frame_wait": summary(waits),
                "after_frame": summary(after_frame),
                "packet_fanout": summary(packet_fanout),
            }
        )

    async def set_mode(request: web.Request) -> web.Response:
        mode["by_packet"] = request.query["by_packet"] == "1"
        probe_packets(request.query.get("probe") == "1")
        return web.json_response(mode)

    app.router.add_get(PROBE_PATH, probe)
    app.router.add_post(MODE_PATH, set_mode)
    asyncio.run(cli.serve(config, secret, app=app, freeze_gc=freeze_gc))


async def _probe(port: int) -> dict[str, dict[str, float]]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{PROBE_PATH}") as response:
        answer: dict[str, dict[str, float]] = await response.json()
        return answer


# ----- the baseline: the same endpoints, directly connected -----


async def direct_latency(seconds: float) -> list[float]:
    """A publisher and a receiver like the meeting's, with no node between them."""
    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = PacketTrack("video")
    adapter.force_codecs(sender.addTransceiver(track, direction="sendonly"), VideoCodec.VP8)
    latencies: list[float] = []

    def on_frame(frame: ReceivedFrame) -> None:
        sent = read_stamp(frame.data)
        if sent is not None:
            latencies.append(time.monotonic() - sent)

    @receiver.on("track")
    def on_track(remote: MediaStreamTrack) -> None:
        adapter.tap_receiver(receiver, remote, on_frame)

    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(receiver.localDescription)
    frames = _loop()
    try:
        start = time.monotonic()
        index = 0
        while time.monotonic() - start < seconds + 2:
            if index == 2 * FPS:
                latencies.clear()  # past the start
            track.push(frames[index % len(frames)] + stamp(time.monotonic()), index * (90_000 // FPS))
            index += 1
            await asyncio.sleep(max(0.0, start + index / FPS - time.monotonic()))
    finally:
        await sender.close()
        await receiver.close()
    return latencies


# ----- the naive reference: decode, then one encode per subscriber -----


async def serve_naive(port: int) -> None:
    """A relay that receives decoded frames (aiortc decodes) and encodes per subscriber (aiortc's MediaRelay)."""
    adapter.set_loopback_candidates(LoopbackCandidates.ONLY)
    relay = MediaRelay()
    published: dict[str, MediaStreamTrack] = {}
    peers: list[RTCPeerConnection] = []

    async def publish(request: web.Request) -> web.Response:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peers.append(pc)
        name = request.match_info["name"]

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            published[name] = track

        await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(text=pc.localDescription.sdp)

    async def subscribe(request: web.Request) -> web.Response:
        names = request.query["from"].split(",")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peers.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="offer"))
        for transceiver, name in zip(pc.getTransceivers(), names, strict=True):
            transceiver.sender.replaceTrack(relay.subscribe(published[name], buffered=False))
            transceiver.direction = "sendonly"
            adapter.force_codecs(transceiver, VideoCodec.VP8)
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(text=pc.localDescription.sdp)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/publish/{name}", publish)
    app.router.add_post("/subscribe", subscribe)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for pc in peers:
        await pc.close()
    await runner.cleanup()


async def naive_step(workdir: Path, parties: int, seconds: float, no_pin: bool = False) -> Step:
    port = _free_port()
    log = (workdir / "naive.log").open("w")
    process = subprocess.Popen(  # noqa: ASYNC220
        [PYTHON, "-m", "benchmarks.meetings", "--naive-node", str(port)], cwd=REPO, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    pcs: list[RTCPeerConnection] = []
    tasks: list[asyncio.Task[None]] = []
    counts: list[int] = []
    try:
        await _wait_http(f"http://127.0.0.1:{port}/healthz", process)
        if not no_pin:
            _pin(process.pid)
        base = f"http://127.0.0.1:{port}"
        names = [f"p{i}" for i in range(parties)]
        async with aiohttp.ClientSession() as http:
            for name in names:
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                pcs.append(pc)
                track = PacketTrack("video")
                adapter.force_codecs(pc.addTransceiver(track, direction="sendonly"), VideoCodec.VP8)
                await pc.setLocalDescription(await pc.createOffer())
                async with http.post(f"{base}/publish/{name}", data=pc.localDescription.sdp) as response:
                    answer = await response.text()
                await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
                tasks.append(asyncio.create_task(_pace(track)))
            await asyncio.sleep(1.0)  # the relay has every publisher's track
            for name in names:
                others = [n for n in names if n != name]
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                pcs.append(pc)
                index = len(counts)
                counts.extend([0] * len(others))

                def counter(slot: int) -> Any:
                    def on_frame(frame: ReceivedFrame) -> None:
                        counts[slot] += 1

                    return on_frame

                @pc.on("track")
                def on_track(track: MediaStreamTrack, pc: RTCPeerConnection = pc, index: int = index) -> None:
                    slot = index + [t.receiver.track for t in pc.getTransceivers()].index(track)
                    adapter.tap_receiver(pc, track, counter(slot))

                for _ in others:
                    pc.addTransceiver("video", direction="recvonly")
                await pc.setLocalDescription(await pc.createOffer())
                async with http.post(f"{base}/subscribe", params={"from": ",".join(others)},
                                     data=pc.localDescription.sdp) as response:  # fmt: skip
                    answer = await response.text()
                await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        streams = parties * (parties - 1)
        deadline = time.monotonic() + 60
        while not all(c > 0 for c in counts) and time.monotonic() < deadline:  # noqa: ASYNC110 (polling counters)
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # the encoders' start
        window = Window(process.pid)
        before = sum(counts)
        window.begin()
        await asyncio.sleep(seconds)
        window.end()
        return Step(f"naive {parties}-party", streams, window, streams * FPS * window.seconds, sum(counts) - before)
    finally:
        for task in tasks:
            task.cancel()
        for pc in pcs:
            await pc.close()
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


async def _pace(track: PacketTrack) -> None:
    frames = _loop()
    start = time.monotonic()
    index = 0
    while True:
        track.push(frames[index % len(frames)], index * (90_000 // FPS))
        index += 1
        await asyncio.sleep(max(0.0, start + index / FPS - time.monotonic()))


# ----- the run -----


async def run(args: argparse.Namespace) -> dict[str, Any]:
    adapter.set_loopback_candidates(LoopbackCandidates.ONLY)
    secret = os.urandom(32)
    tokens = MediaTokens(secret, SystemClock())
    loop = _loop()
    kbps = sum(len(f) for f in loop) * 8 / (len(loop) / FPS) / 1000
    print(f"conditions: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; VP8 "
          f"{WIDTH}x{HEIGHT} {FPS} fps pre-encoded at {kbps:.0f} kbit/s; node in its own process; "
          f"{args.seconds:.0f} s per measurement; node gc.freeze() {'off' if args.no_gc_freeze else 'on'}",
          flush=True)  # fmt: skip
    print("definitions: added_latency_ms_* = packet in to packet out in the node, forwarding packet by packet: per "
          "incoming RTP packet of a publisher and per subscriber, from its datagram reaching the node's Python code to "
          "the sendto of the forwarded packet returning (the node's receive queue included, not the kernel's socket "
          "buffers); by_frame_added_latency_ms_* = the same with the node forwarding frame by frame (incoming k -> "
          "outgoing k of the frame; the wait for the rest of the frame included: by_frame_frame_wait_ms_*, and "
          "by_frame_after_frame_ms_* = the frame's last packet in to each sendto). packet_fanout_ms_* = per incoming "
          "packet, handed to every subscriber; fanout_latency_ms_* = per frame (frame by frame), frame complete to "
          "sent to every subscriber. e2e_added_latency_ms_* = end to end through the node minus a direct pair of the "
          "same endpoints beside the load (includes the load generator's scheduling). Publishers send each frame's "
          "packets back to back (aiortc's sender loop does not yield between them)", flush=True)  # fmt: skip
    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="bench-meetings-") as tmp:
        workdir = Path(tmp)
        async with media_node(workdir, secret, not args.no_gc_freeze) as (port, pid):
            print("affinity for the ramp and the broadcast: not pinned (the load generator may use both CPUs)",
                  flush=True)  # fmt: skip
            meetings = Meetings(port, tokens)
            forwarded: list[Step] = []
            for count, parties in RAMP:
                if count > args.max_meetings:
                    break
                step = await meeting_step(meetings, pid, count, parties, args.seconds)
                forwarded.append(step)
                _print(step)
                if step.degraded:
                    break
            broadcast = await broadcast_step(meetings, pid, args.viewers, args.seconds)
            _print(broadcast)
            ok = [s for s in forwarded if not s.degraded] or forwarded[:1]
            best = max(ok, key=lambda s: s.per_core)
            top = max(s.streams for s in ok)
            # Latency at half the highest load that did not degrade, and at least at half the goal (150 streams).
            pinning = _pin(pid) if not args.no_pin else "not pinned (--no-pin)"
            print(f"affinity for the latency steps and the naive reference: {pinning}", flush=True)
            target = max(args.latency_streams, top // 2)
            rooms = latency_rooms(target)
            print(f"latency at {room_streams(rooms)} streams ({' + '.join(map(str, rooms))} parties): "
                  f"half of the highest load that held ({top}) is {top // 2}, the floor is {args.latency_streams}; "
                  "frame by frame first, then packet by packet (the node's default), same rooms",
                  flush=True)  # fmt: skip
            under_load: list[float] = []
            frame_step = await _latency_meetings(meetings, pid, rooms, args.seconds, False, None)
            _print(frame_step)
            half_step = await _latency_meetings(meetings, pid, rooms, args.seconds, True, under_load)
            _print(half_step)
        idle = await direct_latency(args.seconds)
        naive = await naive_step(workdir, 3, args.seconds, args.no_pin)
        _print(naive)
    steps = [*forwarded, broadcast, frame_step, half_step, naive]
    direct_p50, direct_p99 = _quantile(under_load, 0.5), _quantile(under_load, 0.99)
    e2e_added_p50 = max(0.0, half_step.latency_ms(0.5) - direct_p50)
    e2e_added_p99 = max(0.0, half_step.latency_ms(0.99) - direct_p99)
    packets = half_step.probe.get("packets", {})
    fanout = frame_step.probe.get("fanout", {})
    frame_packets = frame_step.probe.get("packets", {})
    packet_fanout = half_step.probe.get("packet_fanout", {})
    added_p50 = packets.get("p50_ms", float("nan"))
    added_p99 = packets.get("p99_ms", float("nan"))
    through = f"p50 {half_step.latency_ms(0.5):.2f} ms, p99 {half_step.latency_ms(0.99):.2f} ms"
    print(f"lag without the node: idle pair p50 {_quantile(idle, 0.5):.2f} ms, p99 {_quantile(idle, 0.99):.2f} ms; "
          f"a pair beside the load p50 {direct_p50:.2f} ms, p99 {direct_p99:.2f} ms; through the node at "
          f"{half_step.streams} streams: {through}", flush=True)  # fmt: skip
    ratio = best.per_core / naive.per_core if naive.per_core else float("inf")
    print(f"forwarded {best.per_core:.0f} streams/core vs naive {naive.per_core:.1f}: {ratio:.0f}x; broadcast "
          f"{broadcast.per_core:.0f} streams/core; added latency in the node (packet in to packet out) p50 "
          f"{added_p50:.2f} ms, p99 {added_p99:.2f} ms (frame by frame in the same run: p50 "
          f"{frame_packets.get('p50_ms', float('nan')):.2f}, p99 {frame_packets.get('p99_ms', float('nan')):.2f}; "
          f"fan-out per frame p99 {fanout.get('p99_ms', float('nan')):.2f};"
          f" end to end against the direct pair: p50 {e2e_added_p50:.2f}, p99 {e2e_added_p99:.2f})",
          flush=True)  # fmt: skip
    return {
        "path": "forward",
        "forwarded_streams_per_core": round(best.per_core, 1),
        "broadcast_streams_per_core": round(broadcast.per_core, 1),
        "naive_streams_per_core": round(naive.per_core, 2),
        "forward_vs_naive": round(ratio, 1),
        "added_latency_ms_p50": round(added_p50, 2),
        "added_latency_ms_p99": round(added_p99, 2),
        "added_latency_samples": int(packets.get("count", 0)),
        "added_latency_max_ms": round(packets.get("max_ms", float("nan")), 2),
        "packet_fanout_ms_p50": round(packet_fanout.get("p50_ms", float("nan")), 3),
        "packet_fanout_ms_p99": round(packet_fanout.get("p99_ms", float("nan")), 3),
        "by_frame_added_latency_ms_p50": round(frame_packets.get("p50_ms", float("nan")), 2),
        "by_frame_added_latency_ms_p99": round(frame_packets.get("p99_ms", float("nan")), 2),
        "by_frame_vs_by_packet_p99": round(frame_packets.get("p99_ms", float("nan")) / added_p99, 1)
        if added_p99 == added_p99 and added_p99 > 0
        else None,
        "by_frame_frame_wait_ms_p50": round(frame_step.probe.get("frame_wait", {}).get("p50_ms", float("nan")), 2),
        "by_frame_frame_wait_ms_p99": round(frame_step.probe.get("frame_wait", {}).get("p99_ms", float("nan")), 2),
        "by_frame_after_frame_ms_p50": round(frame_step.probe.get("after_frame", {}).get("p50_ms", float("nan")), 2),
        "by_frame_after_frame_ms_p99": round(frame_step.probe.get("after_frame", {}).get("p99_ms", float("nan")), 2),
        "fanout_latency_ms_p50": round(fanout.get("p50_ms", float("nan")), 2),
        "fanout_latency_ms_p99": round(fanout.get("p99_ms", float("nan")), 2),
        "fanout_latency_frames": int(fanout.get("count", 0)),
        "affinity": f"ramp and broadcast not pinned; latency and naive: {pinning}",
        "node_gc_freeze": not args.no_gc_freeze,
        "e2e_added_latency_ms_p50": round(e2e_added_p50, 2),
        "e2e_added_latency_ms_p99": round(e2e_added_p99, 2),
        "latency_load_streams": half_step.streams,
        "latency_rooms": rooms,
        "highest_forwarded_streams_without_degrading": top,
        "through_node_latency_ms_p50": round(half_step.latency_ms(0.5), 2),
        "through_node_latency_ms_p99": round(half_step.latency_ms(0.99), 2),
        "direct_latency_ms_p50": round(direct_p50, 2),
        "direct_latency_ms_p99": round(direct_p99, 2),
        "idle_direct_latency_ms_p99": round(_quantile(idle, 0.99), 2),
        "video": {"codec": "VP8", "width": WIDTH, "height": HEIGHT, "fps": FPS, "kbps": round(kbps)},
        "steps": [s.row() for s in steps],
    }


def latency_rooms(target: int) -> list[int]:
    """Meetings (parties each, at most `PARTIES`) that forward at least `target` streams: 10-party meetings,
    then the smallest meeting that makes up the rest."""
    rooms: list[int] = []
    while (rest := target - room_streams(rooms)) > 0:
        rooms.append(next((n for n in range(2, PARTIES + 1) if n * (n - 1) >= rest), PARTIES))
    return rooms


def room_streams(rooms: list[int]) -> int:
    """Streams the meetings forward: n parties send n(n-1)."""
    return sum(n * (n - 1) for n in rooms)


async def _set_mode(port: int, by_packet: bool, probe: bool) -> None:
    url = f"http://127.0.0.1:{port}{MODE_PATH}?by_packet={int(by_packet)}&probe={int(probe)}"
    async with aiohttp.ClientSession() as http, http.post(url) as response:
        response.raise_for_status()


async def _latency_meetings(
    meetings: Meetings, node_pid: int, rooms: list[int], seconds: float, by_packet: bool, direct: list[float] | None
) -> Step:
    """The rooms' meetings at once, the node forwarding packet by packet or frame by frame; probed."""
    await _set_mode(meetings.port, by_packet, probe=True)
    tag = "p" if by_packet else "f"
    groups = [
        [meetings.peer(f"meet-lat{tag}-{r}", f"l{tag}{r}-{i}", publish=True) for i in range(n)]
        for r, n in enumerate(rooms)
    ]
    peers = [p for group in groups for p in group]
    try:
        await _join_all(peers)
        for group in groups:
            await _wait_flowing(group, group, timeout=60)
        streams = room_streams(rooms)
        name = f"{' + '.join(f'{n}-party' for n in rooms)} (latency, {'by packet' if by_packet else 'by frame'})"
        return await measure(name, node_pid, [], [], streams, seconds, direct, receivers_for_count=peers,
                             probe_port=meetings.port)  # fmt: skip
    finally:
        await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)


def _pin(node_pid: int) -> str:
    """The node on CPU 0, this process (the load generator) on CPU 1, when there are two CPUs or more."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    os.sched_setaffinity(node_pid, {cpus[0]})
    os.sched_setaffinity(0, {cpus[1]})
    return f"node pinned to CPU {cpus[0]}, load generator to CPU {cpus[1]} (other work on the machine is not)"


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _print(step: Step) -> None:
    row = step.row()
    print("  " + ", ".join(f"{k} {v}" for k, v in row.items()) + (" DEGRADED" if step.degraded else ""), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.meetings", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each measurement (default 6)")
    parser.add_argument("--viewers", type=int, default=100, help="broadcast audience (default 100)")
    parser.add_argument("--max-meetings", type=int, default=3, help="most 10-party meetings at once (default 3)")
    parser.add_argument("--quick", action="store_true", help="short: 3 s a step, 30 viewers, at most 1 meeting")
    parser.add_argument("--naive-node", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--probed-node", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-gc-freeze", action="store_true", help="the node without gc.freeze() (to compare)")
    parser.add_argument("--no-pin", action="store_true", help="leave the node and the load on any CPU")
    parser.add_argument(
        "--latency-streams",
        type=int,
        default=150,
        help="the least forwarded streams the latency is measured at (default 150, half the goal)",
    )
    args = parser.parse_args(argv)
    if args.naive_node:
        asyncio.run(serve_naive(args.naive_node))
        return 0
    if args.probed_node:
        serve_probed_node(args.probed_node, freeze_gc=not args.no_gc_freeze)
        return 0
    if args.quick:
        args.seconds, args.viewers, args.max_meetings = 3.0, 30, 1
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
