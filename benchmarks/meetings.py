"""Meetings benchmark: forwarded video streams per core on the media node, a 1-to-N broadcast, the naive path
(decode, then one encode per subscriber) as the reference, and the latency the node adds.

    .venv/bin/python -m benchmarks.meetings [--quick] [--seconds 6] [--viewers 100] [--max-meetings 4] [--no-pin]
        [--latency-streams 150] [--load-workers 4]

What runs where:
- the media node: its own process (`python -m media serve`, meeting extension, loopback ICE candidates), so its
  CPU time is read alone from /proc;
- the load: aiortc participants (`media.rooms.botpeer`) that publish a pre-encoded VP8 loop (640x360, 25 fps,
  about 1 Mbit/s; nothing is encoded at run time) and receive without decoding (frames are taken before aiortc's
  decoder and counted), in `--load-workers` worker processes (`--bot-worker`, children of this one). Each
  meeting's participants are in one worker (meetings are independent; meeting k in worker k mod N); the
  broadcast's presenter is in the first worker and its viewers are dealt over all of them. This process drives
  them over their stdin and stdout (one JSON request and one JSON answer a line): it issues the media tokens and
  sends them in the requests (the secret stays here, nothing is on a command line or in an environment), and
  asks every worker to count its receivers' frames, jitter-buffer gaps and frame lags between the same two
  instants of time.monotonic (one clock for every process on the machine); `count_late_ms` says how late the
  latest worker counted. A worker exits when its stdin closes (this process is done or died) and after an hour.
  `--load-workers 0` keeps the participants in this process, as before the workers (to compare).
- this process: the steps, the CPU figures (/proc), the probes, and the direct pair of the latency baseline.

Why 4 workers by default (on 2 cores): one event loop is one core at most, and a load process with two meetings of
10 (180 streams) needs 0.65 to 1 core: in this process the 2 x 10 step collapsed (its sockets overflowed: kernel
RcvbufErrors), and with 2 workers the 3 x 10 step, whose first worker had two meetings, degraded (lag p99 860 ms,
5,000 datagrams dropped). With one worker per meeting of the ramp (`--max-meetings` 4, the last step, so that a
run shows where it stops), each carries about 0.33 of a core; 3 x 10 held with 3 workers, and 4 x 10 then
saturates the machine (node 0.7-0.77 and load 1.14-1.24 of 2 cores) rather than a worker. An idle worker costs
memory, not CPU. In the pinned latency steps all the load
shares one CPU whatever the number of workers.
Audio is off: the figures are video streams.

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
(or the naive relay) is pinned to the first CPU and this process and the load workers to the second
(`os.sched_setaffinity`; `--no-pin` to leave them free throughout); other work on the machine is not pinned. The machine
is shared (2 cores): `machine_busy_cores` and `other_busy_cores` say how busy it was,
and `machine_saturated` marks a step during which every core was busy (a step that degrades then says more about
the machine than about the node: the node's own CPU is in `node_cores`). `load_cores` is the load generator's CPU:
this process's and its workers' (`busiest_load_process_cores`: the busiest of them; near 1, its one event loop
is the limit); `other_busy_cores` is the machine's less the node's and the load's;
`udp_rcvbuf_errors`: datagrams the kernel dropped over the window because a socket's receive buffer was full
(machine-wide: the node's, the load's or other work's sockets; the load's when its event loops fall behind).
Prints conditions and a table, then a JSON last line with `forwarded_streams_per_core`,
`broadcast_streams_per_core`, `naive_streams_per_core`, `added_latency_ms_p50`, `added_latency_ms_p99`, `path`
("forward": encoded frames forwarded as they are), `load_workers` and the details.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
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
from typing import Any, Protocol

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


def _udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped because a socket's receive buffer was full (all processes: /proc/net/snmp)."""
    header, values = (
        line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")
    )
    return int(values[header.index("RcvbufErrors")])


@dataclass
class Window:
    """CPU of the node, the load generator (this process and its workers) and the machine over one measurement."""

    node_pid: int
    load_pids: Sequence[int] = ()
    start: float = 0.0
    node0: float = 0.0
    load0: list[float] = field(default_factory=list)
    busy0: float = 0.0
    seconds: float = 0.0
    node_cores: float = 0.0
    load_cores: float = 0.0
    busiest_load_cores: float = 0.0
    """The busiest load process's CPU: near 1, its one event loop is the limit."""
    machine_cores: float = 0.0
    rcvbuf0: int = 0
    rcvbuf_errors: int = 0

    def begin(self) -> None:
        self.start = time.monotonic()
        self.node0 = _cpu_seconds(self.node_pid)
        self.load0 = self._load_cpu()
        self.busy0 = _machine_busy()[0]
        self.rcvbuf0 = _udp_rcvbuf_errors()

    def end(self) -> None:
        self.seconds = time.monotonic() - self.start
        self.node_cores = (_cpu_seconds(self.node_pid) - self.node0) / self.seconds
        each = [(cpu - cpu0) / self.seconds for cpu, cpu0 in zip(self._load_cpu(), self.load0, strict=True)]
        self.load_cores, self.busiest_load_cores = sum(each), max(each)
        self.machine_cores = (_machine_busy()[0] - self.busy0) / self.seconds
        self.rcvbuf_errors = _udp_rcvbuf_errors() - self.rcvbuf0

    def _load_cpu(self) -> list[float]:
        """CPU seconds of this process and of each load worker."""
        return [time.process_time(), *(_cpu_seconds(pid) for pid in self.load_pids)]


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
    window_late: float = 0.0
    """How late (seconds) the latest load process counted after the window's bounds."""

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
            "receiver_gaps": self.gaps, "count_late_ms": round(self.window_late * 1000, 1),
            "load_cores": round(w.load_cores, 3), "busiest_load_process_cores": round(w.busiest_load_cores, 3),
            "machine_busy_cores": round(w.machine_cores, 3),
            "other_busy_cores": round(max(0.0, w.machine_cores - w.node_cores - w.load_cores), 3),
            "machine_saturated": w.machine_cores > 0.95 * (os.cpu_count() or 1),
            "udp_rcvbuf_errors": w.rcvbuf_errors,
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


# ----- the load: bot peers, in this process or in worker processes -----


@dataclass(frozen=True)
class PeerSpec:
    """One participant to join: its name (unique in its step), the node's WebSocket and its media token."""

    name: str
    url: str
    token: str
    publish: bool


@dataclass
class Counted:
    """What a load process's receivers got over one measurement window."""

    frames: int
    gaps: int
    latencies: list[float]
    late: float
    """How late (seconds) the process took its first or last count after the window's bounds."""


class BotHost(Protocol):
    """A place bot peers run: `Bots` in this process or a `BotWorker` process."""

    async def join(self, specs: list[PeerSpec]) -> dict[str, str]: ...

    async def wait_flowing(self, receivers: list[str], publishers: list[str]) -> None: ...

    async def window(self, names: list[str], begin: float, end: float) -> Counted: ...

    async def close(self, names: list[str]) -> None: ...


class Meetings:
    def __init__(self, port: int, tokens: MediaTokens, hosts: Sequence[BotHost]) -> None:
        self.port = port
        self.tokens = tokens
        self.hosts = hosts

    def peer(self, room: str, name: str, *, publish: bool) -> PeerSpec:
        token = self.tokens.issue(
            kind=TokenKind.MEETING, node=NODE_ID, room=room, subject=f"bench:{name}", ttl=timedelta(minutes=5),
            name=name, role=MeetingRole.PARTICIPANT,
        )  # fmt: skip
        url = f"ws://127.0.0.1:{self.port}{MEETING_WS_PATH.format(room=room)}"
        return PeerSpec(name, url, token, publish)


def _loop() -> tuple[bytes, ...]:
    return vp8_loop(WIDTH, HEIGHT, FPS, 2.0, KBPS)


class Bots:
    """The bot peers of one process, by name."""

    def __init__(self) -> None:
        self.peers: dict[str, BotPeer] = {}

    async def join(self, specs: list[PeerSpec], batch: int = 10) -> dict[str, str]:
        """Join in batches; the participant id of each."""
        for i in range(0, len(specs), batch):
            peers = [self._peer(spec) for spec in specs[i : i + batch]]
            await asyncio.gather(*(peer.join(timeout=60) for peer in peers))
        return {spec.name: self.peers[spec.name].id for spec in specs}

    def _peer(self, spec: PeerSpec) -> BotPeer:
        peer = BotPeer(spec.url, spec.token, audio=False, video=spec.publish, fps=FPS, video_frames=_loop(), stamp=True)
        self.peers[spec.name] = peer
        return peer

    async def wait_flowing(self, receivers: list[str], publishers: list[str], timeout: float = 60) -> None:  # noqa: ASYNC109
        """Until each receiver has frames from each publisher (participant ids) but itself."""
        peers = [self.peers[name] for name in receivers]
        deadline = time.monotonic() + timeout
        while not all(r.frames_from(p, Source.CAMERA) > 0 for r in peers for p in publishers if p != r.id):
            if time.monotonic() > deadline:
                raise TimeoutError("not every stream started")
            await asyncio.sleep(0.2)

    async def window(self, names: list[str], begin: float, end: float) -> Counted:
        """Frames, receiver gaps and lags of these peers between two instants (time.monotonic: the same clock in
        every process)."""
        peers = [self.peers[name] for name in names]
        await _sleep_until(begin)
        late = time.monotonic() - begin
        _clear_latencies(peers)
        frames, gaps = _received(peers), _gaps(peers)
        await _sleep_until(end)
        late = max(late, time.monotonic() - end)
        return Counted(_received(peers) - frames, _gaps(peers) - gaps, _latencies(peers), late)

    async def close(self, names: list[str]) -> None:
        peers = [self.peers.pop(name) for name in names if name in self.peers]
        await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)


async def _sleep_until(instant: float) -> None:
    await asyncio.sleep(max(0.0, instant - time.monotonic()))


def _received(receivers: Sequence[BotPeer]) -> int:
    return sum(entry.frames for r in receivers for entry in r.received.values())


def _gaps(receivers: Sequence[BotPeer]) -> int:
    return sum(r.receive_gaps for r in receivers)


def _clear_latencies(receivers: Sequence[BotPeer]) -> None:
    for r in receivers:
        for entry in r.received.values():
            entry.latencies.clear()


def _latencies(receivers: Sequence[BotPeer]) -> list[float]:
    return [lat for r in receivers for entry in r.received.values() for lat in entry.latencies]


LOAD_WORKERS = 4
"""See the module docstring."""
LINE_LIMIT = 1 << 26
"""The longest line on a worker's pipe: a window's lags (up to 100,000 per stream) come back as one line."""
WORKER_LIFETIME = 3600.0
"""A worker exits after this long whatever happens (a full run takes about 5 minutes)."""
REQUEST_TIMEOUT = 600.0
"""The longest a worker may take to answer (joining 50 peers at 60 s per batch of 10 at most, with margin)."""


class BotWorker:
    """A load process (`python -m benchmarks.meetings --bot-worker`) holding `Bots`: one JSON request a line on its
    stdin, one JSON answer a line on its stdout, one request at a time. The media tokens travel in the requests,
    so no secret is on a command line or in an environment. It exits on EOF (this process closed the pipe or
    died) and after `WORKER_LIFETIME`; its stderr goes to `log`."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log
        self._lock = asyncio.Lock()
        self._broken = False
        """A request timed out or was cancelled after it was written: the pipe is out of step."""

    @classmethod
    async def start(cls, workdir: Path, index: int) -> BotWorker:
        log = workdir / f"bots-{index}.log"
        with log.open("w") as stderr:
            process = await asyncio.create_subprocess_exec(
                PYTHON, "-m", "benchmarks.meetings", "--bot-worker", str(WORKER_LIFETIME), cwd=REPO,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr, limit=LINE_LIMIT,
            )  # fmt: skip
        worker = cls(process, log)
        try:
            await worker._call("hello")  # imported and the VP8 loop encoded, before any step
        except BaseException:
            await worker.stop()  # not handed to the caller: it would not be stopped otherwise
            raise
        return worker

    @property
    def pid(self) -> int:
        return self.process.pid

    async def join(self, specs: list[PeerSpec]) -> dict[str, str]:
        ids: dict[str, str] = await self._call("join", specs=[dataclasses.asdict(s) for s in specs])
        return ids

    async def wait_flowing(self, receivers: list[str], publishers: list[str]) -> None:
        await self._call("wait_flowing", receivers=receivers, publishers=publishers)

    async def window(self, names: list[str], begin: float, end: float) -> Counted:
        return Counted(**await self._call("window", names=names, begin=begin, end=end))

    async def close(self, names: list[str]) -> None:
        await self._call("close", names=names)

    async def _call(self, op: str, **params: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        if self._broken:
            raise RuntimeError(f"bot worker {self.pid}: an earlier request was cut off, its answer would come next")
        async with self._lock:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    self.process.stdin.write(json.dumps({"op": op, **params}).encode() + b"\n")
                    await self.process.stdin.drain()
                    line = await self.process.stdout.readline()
            except BaseException:
                self._broken = True
                raise
        if not line:
            raise RuntimeError(f"bot worker {self.pid} exited: {self._log_tail()}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"bot worker {self.pid}, {op}: {answer['error']}")
        return answer["ok"]

    def _log_tail(self) -> str:
        return " | ".join(self.log.read_text(errors="replace").splitlines()[-5:])

    async def stop(self) -> None:
        """Close its stdin (it closes its peers and exits), then wait for it, at most 15 s."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


@contextlib.asynccontextmanager
async def bot_hosts(workdir: Path, workers: int) -> AsyncIterator[list[BotHost]]:
    """`workers` load processes, or this process alone with 0."""
    if workers == 0:
        yield [Bots()]
        return
    started: list[BotWorker] = []
    try:
        for index in range(workers):
            started.append(await BotWorker.start(workdir, index))
        yield list(started)
    finally:
        await asyncio.gather(*(worker.stop() for worker in started), return_exceptions=True)


def _worker_pids(hosts: Sequence[BotHost]) -> list[int]:
    return [host.pid for host in hosts if isinstance(host, BotWorker)]


async def serve_bots(lifetime: float) -> None:
    """The `--bot-worker` side of `BotWorker`. stdout carries the answers only: anything else printed goes to
    stderr."""
    adapter.set_loopback_candidates(LoopbackCandidates.ONLY)
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    bots = Bots()
    requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def read() -> None:
        while line := await reader.readline():
            requests.put_nowait(json.loads(line))

    async def answer() -> None:
        while True:
            reply = await _answer(bots, await requests.get())
            answers.write(json.dumps(reply).encode() + b"\n")
            answers.flush()

    reading, answering = asyncio.create_task(read()), asyncio.create_task(answer())
    try:
        # EOF ends `read`: stop at once, even in the middle of a request.
        await asyncio.wait({reading, answering}, timeout=lifetime, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reading.cancel()
        answering.cancel()
        await bots.close(list(bots.peers))


async def _answer(bots: Bots, request: dict[str, Any]) -> dict[str, Any]:
    try:
        match request["op"]:
            case "hello":
                _loop()
                return {"ok": os.getpid()}
            case "join":
                return {"ok": await bots.join([PeerSpec(**spec) for spec in request["specs"]])}
            case "wait_flowing":
                await bots.wait_flowing(request["receivers"], request["publishers"])
                return {"ok": None}
            case "window":
                counted = await bots.window(request["names"], request["begin"], request["end"])
                return {"ok": dataclasses.asdict(counted)}
            case "close":
                await bots.close(request["names"])
                return {"ok": None}
            case op:
                return {"error": f"unknown op {op!r}"}
    except Exception as error:  # the parent raises it with the worker's name
        return {"error": f"{type(error).__name__}: {error}"}


# ----- the steps: peers placed on the load processes -----

Group = tuple[BotHost, list[PeerSpec]]
"""Peers that run on one host."""


def _by_host(groups: Sequence[Group]) -> list[Group]:
    """The groups merged per host (one request per host and step)."""
    merged: dict[int, Group] = {}
    for host, specs in groups:
        merged.setdefault(id(host), (host, []))[1].extend(specs)
    return list(merged.values())


def _names(specs: Sequence[PeerSpec]) -> list[str]:
    return [spec.name for spec in specs]


async def _join(groups: Sequence[Group]) -> dict[str, str]:
    """Every host joins its peers, the hosts at once: name -> participant id."""
    joined = await asyncio.gather(*(host.join(specs) for host, specs in _by_host(groups)))
    return {name: pid for ids in joined for name, pid in ids.items()}


async def _close(groups: Sequence[Group]) -> None:
    await asyncio.gather(*(host.close(_names(specs)) for host, specs in _by_host(groups)), return_exceptions=True)


async def _wait_flowing(groups: Sequence[Group], ids: dict[str, str], publishers: Sequence[PeerSpec] = ()) -> None:
    """Until every group's peers receive every publisher: `publishers`, or (a meeting) the group itself."""
    await asyncio.gather(
        *(host.wait_flowing(_names(specs), [ids[p.name] for p in (publishers or specs)]) for host, specs in groups)
    )


async def measure(
    name: str,
    node_pid: int,
    hosts: Sequence[BotHost],
    counted: Sequence[Group],
    streams: int,
    seconds: float,
    direct: list[float] | None = None,
    probe_port: int | None = None,
) -> Step:
    """One measurement window over the receivers in `counted` (their flow already checked); with `direct`, a
    direct pair (no node) runs in this process meanwhile, under the same load, and its latencies are appended
    there. Every load process counts between the same two instants, this process takes the CPU figures then."""
    # Past the start (joins, renegotiations, GOP caches, first keyframes): a steady state, longer for more streams.
    await asyncio.sleep(1.0 + streams / 60)
    pair = asyncio.create_task(direct_latency(seconds)) if direct is not None else None
    if pair is not None:
        await asyncio.sleep(2.0)  # the pair's own start
    if probe_port is not None:
        await _probe(probe_port)  # from now on
    begin = time.monotonic() + WINDOW_LEAD
    counting = asyncio.gather(
        *(host.window(_names(specs), begin, begin + seconds) for host, specs in _by_host(counted))
    )
    window = Window(node_pid, _worker_pids(hosts))
    await _sleep_until(begin)
    window.begin()
    await _sleep_until(begin + seconds)
    window.end()
    counts = await counting
    probe = await _probe(probe_port) if probe_port is not None else {}
    if pair is not None and direct is not None:
        direct.extend(await pair)
    return Step(
        name, streams, window, streams * FPS * window.seconds, sum(c.frames for c in counts),
        [lat for c in counts for lat in c.latencies], sum(c.gaps for c in counts), probe,
        window_late=max((c.late for c in counts), default=0.0),
    )  # fmt: skip


WINDOW_LEAD = 0.3
"""Seconds between asking the load processes to count and the window's start: time for the requests to arrive."""

RAMP = ((1, 4), (1, 6), (1, 8), (1, 10), (2, 10), (3, 10), (4, 10))
"""(meetings, parties each): 12, 30, 56, 90, 180, 270, 360 forwarded streams."""


async def meetings_measured(
    name: str,
    meetings: Meetings,
    node_pid: int,
    rooms: list[list[PeerSpec]],
    seconds: float,
    direct: list[float] | None = None,
    probe_port: int | None = None,
) -> Step:
    """Meetings at once, each on one host (meetings are independent), in turn over the hosts."""
    hosts = meetings.hosts
    groups = [(hosts[r % len(hosts)], room) for r, room in enumerate(rooms)]
    try:
        ids = await _join(groups)
        await _wait_flowing(groups, ids)
        streams = room_streams([len(room) for room in rooms])
        return await measure(name, node_pid, hosts, groups, streams, seconds, direct, probe_port)
    finally:
        await _close(groups)


async def meeting_step(meetings: Meetings, node_pid: int, count: int, parties: int, seconds: float) -> Step:
    rooms = [
        [meetings.peer(f"meet-{count}x{parties}-{m}", f"p{m}-{i}", publish=True) for i in range(parties)]
        for m in range(count)
    ]
    return await meetings_measured(f"{count} x {parties}-party", meetings, node_pid, rooms, seconds)


async def broadcast_step(meetings: Meetings, node_pid: int, viewers: int, seconds: float) -> Step:
    """The presenter on the first host, the viewers dealt over all of them."""
    hosts = meetings.hosts
    presenter = meetings.peer("meet-bcast-1", "presenter", publish=True)
    audience = [meetings.peer("meet-bcast-1", f"v{i}", publish=False) for i in range(viewers)]
    stage: list[Group] = [(hosts[0], [presenter])]
    shares = [audience[h :: len(hosts)] for h in range(len(hosts))]
    seats: list[Group] = [(host, share) for host, share in zip(hosts, shares, strict=True) if share]
    try:
        ids = await _join(stage)
        ids |= await _join(seats)
        await _wait_flowing(seats, ids, publishers=[presenter])
        return await measure(f"1 -> {viewers}", node_pid, hosts, seats, viewers, seconds)
    finally:
        await _close([*stage, *seats])


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
          f"{args.seconds:.0f} s per measurement; node gc.freeze() {'off' if args.no_gc_freeze else 'on'}; load: "
          f"{_load_description(args.load_workers)}",
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
        async with (
            media_node(workdir, secret, not args.no_gc_freeze) as (port, pid),
            bot_hosts(workdir, args.load_workers) as hosts,
        ):
            print("affinity for the ramp and the broadcast: not pinned (the load generator may use both CPUs)",
                  flush=True)  # fmt: skip
            meetings = Meetings(port, tokens, hosts)
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
            pinning = _pin(pid, _worker_pids(hosts)) if not args.no_pin else "not pinned (--no-pin)"
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
        "load_workers": args.load_workers,
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


def _load_description(workers: int) -> str:
    if workers == 0:
        return "the bot peers in this process (--load-workers 0)"
    return f"the bot peers in {workers} worker processes (each meeting in one, the broadcast's viewers dealt over all)"


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
    specs = [
        [meetings.peer(f"meet-lat{tag}-{r}", f"l{tag}{r}-{i}", publish=True) for i in range(n)]
        for r, n in enumerate(rooms)
    ]
    name = f"{' + '.join(f'{n}-party' for n in rooms)} (latency, {'by packet' if by_packet else 'by frame'})"
    return await meetings_measured(name, meetings, node_pid, specs, seconds, direct, probe_port=meetings.port)


def _pin(node_pid: int, load_pids: Sequence[int] = ()) -> str:
    """The node on CPU 0, this process and the load workers (the load generator) on CPU 1, when there are two
    CPUs or more."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    os.sched_setaffinity(node_pid, {cpus[0]})
    for pid in (0, *load_pids):
        os.sched_setaffinity(pid, {cpus[1]})
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
    parser.add_argument("--max-meetings", type=int, default=4, help="most 10-party meetings at once (default 4)")
    parser.add_argument("--quick", action="store_true", help="short: 3 s a step, 30 viewers, at most 1 meeting")
    parser.add_argument("--naive-node", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--probed-node", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--bot-worker", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--load-workers",
        type=int,
        default=LOAD_WORKERS,
        help=f"processes for the bot peers (default {LOAD_WORKERS}; 0: in this process, as before)",
    )
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
    if args.bot_worker:
        asyncio.run(serve_bots(args.bot_worker))
        return 0
    if args.quick:
        args.seconds, args.viewers, args.max_meetings = 3.0, 30, 1
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
