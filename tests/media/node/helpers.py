"""A real media node on a free loopback port, tokens for it, and real aiortc peers that publish and view.

The node is the real app (`media.node.app.build_app`) served by aiohttp on 127.0.0.1; the publisher sends the
simulator's pre-encoded H.264 loop without encoding (paced at 25 fps); the viewer decodes what it receives
(aiortc's own decoder, through `track.recv()`), so a test counts decoded frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from common.clock import Clock, SystemClock
from media.node.app import EXTENSIONS, build_app
from media.node.config import NodeConfig
from media.node.context import NODE, NodeContext
from media.node.liveview import LiveView
from protocol.media import MediaTokens, TokenKind
from rtc.aiortc_adapter import LoopbackCandidates, VideoCodec, force_codecs, set_loopback_candidates
from rtc.packet_track import PacketTrack
from simulator.video import SUB, EncodedLoop, get_loop
from tests.ports import free_port
from tests.waiting import eventually_true

CACHE_DIR = Path(__file__).resolve().parents[3] / "var" / "cache" / "test-loops"
START_CODE = b"\x00\x00\x00\x01"
NODE_ID = "media-test"
SDP = "application/sdp"


def write_secret(path: Path) -> bytes:
    """A media secret file as the controller writes it (hex, mode 0600)."""
    secret = secrets.token_bytes(32)
    path.write_text(secret.hex() + "\n", encoding="ascii")
    path.chmod(0o600)
    return secret


@dataclass
class RunningNode:
    url: str
    app: web.Application
    secret: bytes
    tokens: MediaTokens
    clock: Clock

    @property
    def context(self) -> NodeContext:
        return self.app[NODE]

    @property
    def live(self) -> LiveView:
        found = next(e for e in self.app[EXTENSIONS] if isinstance(e, LiveView))
        return found

    def token(self, kind: TokenKind, room: str, *, ttl_s: float = 60, node: str = NODE_ID, **claims: Any) -> str:
        subject = claims.pop("subject", "agent:1" if kind is TokenKind.PUBLISH else "user:7")
        return self.tokens.issue(
            kind=kind, node=node, room=room, subject=subject, ttl=timedelta(seconds=ttl_s), **claims
        )

    def view_token(self, room: str, session: str = "live-1", device: str = "phone-1", **kw: Any) -> str:
        return self.token(TokenKind.VIEW, room, session=session, device=device, **kw)


@contextlib.asynccontextmanager
async def running_node(tmp_path: Path, *, clock: Clock | None = None, **settings: Any) -> AsyncIterator[RunningNode]:
    secret_file = tmp_path / "media-secret.key"
    secret = write_secret(secret_file)
    port = free_port()
    data: dict[str, Any] = {
        "node_id": NODE_ID,
        "host": "127.0.0.1",
        "port": port,
        "media_secret_file": str(secret_file),
        "loopback_candidates": True,
        "relay_idle_close_s": 30.0,
    }
    data.update(settings)
    config = NodeConfig.model_validate(data)
    clock = clock or SystemClock()
    app = build_app(config, secret, clock=clock)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        yield RunningNode(f"http://127.0.0.1:{port}", app, secret, MediaTokens(secret, clock), clock)
    finally:
        await runner.cleanup()
        # build_app switched aioice to loopback-only candidates for this process; later tests start clean.
        set_loopback_candidates(LoopbackCandidates.DEFAULT)


async def h264_loop() -> EncodedLoop:
    return await get_loop("node-test", SUB, CACHE_DIR)


def peer() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def offer_of(pc: RTCPeerConnection) -> str:
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    return sdp


async def post_sdp(url: str, token: str | None, sdp: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    sent = {"Content-Type": SDP, **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http, http.post(url, data=sdp.encode(), headers=sent) as response:
        return response.status, await response.text(), dict(response.headers)


@dataclass
class LoopPublisher:
    """A WHIP publisher sending the simulator's loop as it is, paced at 25 fps (a camera's pace)."""

    loop: EncodedLoop
    pc: RTCPeerConnection = field(default_factory=peer)
    track: PacketTrack = field(default_factory=lambda: PacketTrack("video"))
    index: int = 0
    location: str = ""
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        transceiver = self.pc.addTransceiver(self.track, direction="sendonly")
        force_codecs(transceiver, VideoCodec.H264)

    async def publish(self, node: RunningNode | NodeProcess, room: str, token: str) -> int:
        """POST the offer; start sending on success. The HTTP status."""
        status, body, headers = await post_sdp(f"{node.url}/whip/{room}", token, await offer_of(self.pc))
        if status == 201:
            self.location = headers["Location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
            self._task = asyncio.create_task(self._run())
        return status

    async def _run(self) -> None:
        loop = self.loop
        while True:
            frame = loop.frames[self.index % len(loop.frames)]
            self.track.push(b"".join(START_CODE + nal for nal in frame.nals), self.index * 3600)
            self.index += 1
            await asyncio.sleep(0.04)  # pacing a source at 25 fps, not waiting for a condition

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.pc.close()


@dataclass
class DecodingViewer:
    """A WHEP viewer that decodes what it receives (aiortc's H.264 decoder) and counts the frames."""

    pc: RTCPeerConnection = field(default_factory=peer)
    decoded: int = 0
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    location: str = ""
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.pc.addTransceiver("video", direction="recvonly")

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._task = asyncio.create_task(self._read(track))

        @self.pc.on("connectionstatechange")
        def changed() -> None:
            if self.pc.connectionState in ("failed", "closed"):
                self.ended.set()

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
                self.decoded += 1
        except MediaStreamError:
            self.ended.set()

    async def view(self, node: RunningNode | NodeProcess, room: str, token: str, **headers: str) -> tuple[int, str]:
        status, body, response_headers = await post_sdp(
            f"{node.url}/whep/{room}", token, await offer_of(self.pc), **headers
        )
        if status == 201:
            self.location = response_headers["Location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        return status, body

    async def close(self) -> None:
        await self.pc.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class NodeProcess:
    """`python -m media serve` in a process of its own, and tokens for it."""

    url: str
    secret: bytes
    tokens: MediaTokens
    process: asyncio.subprocess.Process

    def token(self, kind: TokenKind, room: str, *, ttl_s: float = 60, **claims: Any) -> str:
        subject = claims.pop("subject", "agent:1" if kind is TokenKind.PUBLISH else "user:7")
        return self.tokens.issue(
            kind=kind, node=NODE_ID, room=room, subject=subject, ttl=timedelta(seconds=ttl_s), **claims
        )

    async def healthz(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/healthz") as response:
            body: dict[str, Any] = await response.json()
            return body


@contextlib.asynccontextmanager
async def node_process(tmp_path: Path, **settings: Any) -> AsyncIterator[NodeProcess]:
    """The node as deployed: its command line, a TOML file, KETNOI_MEDIA_* variables; stopped with SIGTERM."""
    secret_file = tmp_path / "media-secret.key"
    secret = write_secret(secret_file)
    port = free_port()
    config = tmp_path / "media.toml"
    lines = [f'node_id = "{NODE_ID}"', 'host = "127.0.0.1"', f'media_secret_file = "{secret_file}"']
    for key, value in settings.items():
        lines.append(f"{key} = {json_toml(value)}")
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {**os.environ, "KETNOI_MEDIA_PORT": str(port), "KETNOI_MEDIA_LOOPBACK_CANDIDATES": "true"}
    log = (tmp_path / "media.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "media", "serve", "--config", str(config), env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"

    async def up() -> bool:
        if process.returncode is not None:
            raise RuntimeError(f"the media node exited: {(tmp_path / 'media.log').read_text()}")
        with contextlib.suppress(aiohttp.ClientError):
            async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as response:
                return response.status == 200
        return False

    try:
        await eventually_true(up, timeout=30, interval=0.1)
        yield NodeProcess(url, secret, MediaTokens(secret, SystemClock()), process)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


def json_toml(value: Any) -> str:
    """A scalar or a list of scalars as TOML (JSON's syntax is TOML's for these)."""
    return json.dumps(value)
