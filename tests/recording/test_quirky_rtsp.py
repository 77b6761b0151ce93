"""The recorder's own RTSP client against a camera unlike the simulator: Digest with qop=auth, relative track
control, interleaved channels 2-3, PLAY's reply and the first GOP in one write, RTP with CSRCs, header extensions
and padding, SPS/PPS in STAP-A, packets split across writes, stray replies and RTCP among the packets. Every
segment still starts on a keyframe, decodes and agrees with the index."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import re
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.recording.cameras import camera_id
from protocol.camera import CameraReport, CameraState, StreamProfile
from simulator.rtp import packetize_nal
from simulator.video import EncodedLoop, ProfileSpec, encode_loop
from tests.agents.cameras import PASSWORD
from tests.ports import free_port
from tests.recording.helpers import check_segment, complete_segments, supervising, wait_segments

REF = "urn:uuid:7c1d8a52-1b2c-4d3e-8f90-0a1b2c3d4e5f"
PROFILE = ProfileSpec("q", "Quirky", 320, 240, 25, 300, 1.0, "q")
REALM = "quirky"
NONCE = "0123456789abcdef"


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def rtp(seq: int, ts: int, marker: bool, payload: bytes, variant: int) -> bytes:
    """An RTP packet; `variant` adds a CSRC (1), a header extension (2) or padding (3)."""
    first, extra, tail = 0x80, b"", b""
    if variant == 1:
        first |= 1
        extra = struct.pack(">I", 0x11223344)
    elif variant == 2:
        first |= 0x10
        extra = struct.pack(">HHI", 0xBEDE, 1, 0)
    elif variant == 3:
        first |= 0x20
        tail = b"\0\0\3"
    header = struct.pack(">BBHII", first, (0x80 if marker else 0) | 96, seq & 0xFFFF, ts & 0xFFFFFFFF, 0x5EED)
    return header + extra + payload + tail


def stap_a(*nals: bytes) -> bytes:
    return bytes([24]) + b"".join(struct.pack(">H", len(n)) + n for n in nals)


@dataclass
class Quirky:
    loop: EncodedLoop
    port: int
    jumps: tuple[tuple[int, int], ...] = ()
    """(frame index, ticks): the camera's RTP clock steps by `ticks` at that frame (a clock jump)."""
    qop_seen: bool = False
    plays: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def frame_bytes(self, index: int, seq: int, ts: int) -> tuple[bytes, int]:
        frame = self.loop.frames[index % len(self.loop.frames)]
        nals = list(frame.nals)
        payloads: list[bytes] = []
        if frame.keyframe:  # SPS and PPS aggregated in one STAP-A packet
            params = [n for n in nals if n[0] & 0x1F in (7, 8)]
            nals = [n for n in nals if n[0] & 0x1F not in (7, 8)]
            payloads.append(stap_a(*params))
        for nal in nals:
            payloads += packetize_nal(nal, 900)
        out = []
        for i, payload in enumerate(payloads):
            packet = rtp(seq + i, ts, i == len(payloads) - 1, payload, (seq + i) % 4)
            out.append(struct.pack(">cBH", b"$", 2, len(packet)) + packet)
        return b"".join(out), len(payloads)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._requests(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for task in list(self.tasks):
                task.cancel()
            writer.close()

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            method, uri, _ = head.split("\r\n")[0].split(" ")
            cseq = re.search(r"CSeq: (\d+)", head)
            reply = f"RTSP/1.0 200 OK\r\nCSeq: {cseq.group(1) if cseq else 0}\r\n"
            if method != "OPTIONS" and not self.authorized(method, head):
                challenge = f'Digest realm="{REALM}", nonce="{NONCE}", qop="auth"'
                writer.write(f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq.group(1) if cseq else 0}\r\n"
                             f"WWW-Authenticate: {challenge}\r\nContent-Length: 0\r\n\r\n".encode())  # fmt: skip
            elif method == "DESCRIBE":
                sdp = (
                    "v=0\r\ns=quirky\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=control:audio\r\n"
                    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
                    f"a=fmtp:96 packetization-mode=1;sprop-parameter-sets={self.loop.sprop_parameter_sets}\r\n"
                    "a=control:track1\r\n"
                )
                base = f"rtsp://127.0.0.1:{self.port}/cam/"
                writer.write(f"{reply}Content-Base: {base}\r\nContent-Type: application/sdp\r\n"
                             f"Content-Length: {len(sdp)}\r\n\r\n{sdp}".encode())  # fmt: skip
            elif method == "SETUP":
                assert uri.endswith("/cam/track1"), uri
                writer.write(f"{reply}Transport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n"
                             "Session: 12345678;timeout=60\r\n\r\n".encode())  # fmt: skip
            elif method == "PLAY":
                self.plays += 1
                first, count = self.frame_bytes(0, 1000, 0)
                writer.write(f"{reply}Session: 12345678\r\n\r\n".encode() + first)  # one write
                task = asyncio.create_task(self.stream(writer, 1000 + count))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            else:
                writer.write(f"{reply}\r\n".encode())
            await writer.drain()

    def authorized(self, method: str, head: str) -> bool:
        found = dict(re.findall(r'(\w+)="?([^",]*)"?', head.split("Authorization: Digest ", 1)[-1].split("\r\n")[0]))
        if "response" not in found:
            return False
        ha1, ha2 = md5(f"admin:{REALM}:{PASSWORD}"), md5(f"{method}:{found['uri']}")
        expected = md5(f"{ha1}:{NONCE}:{found.get('nc')}:{found.get('cnonce')}:auth:{ha2}")
        self.qop_seen = found.get("qop") == "auth"
        return found["response"] == expected and found.get("username") == "admin"

    async def stream(self, writer: asyncio.StreamWriter, seq: int) -> None:
        index = 1
        ts = 3600
        while True:
            data, count = self.frame_bytes(index, seq, ts)
            cut = len(data) // 3  # split inside a packet
            writer.write(data[:cut])
            await writer.drain()
            writer.write(data[cut:])
            if index % 10 == 0:  # a stray reply and an RTCP packet among the media
                writer.write(b"RTSP/1.0 200 OK\r\nCSeq: 999\r\n\r\n" + struct.pack(">cBH", b"$", 3, 8) + bytes(8))
            await writer.drain()
            seq += count
            index += 1
            ts += 3600 + sum(step for at, step in self.jumps if at == index)
            await asyncio.sleep(0.04)  # 25 fps pacing of the stream (not a test wait)


@contextlib.asynccontextmanager
async def quirky_camera(jumps: tuple[tuple[int, int], ...] = ()) -> AsyncIterator[Quirky]:
    loop = await asyncio.to_thread(encode_loop, "quirky", PROFILE)
    camera = Quirky(loop, free_port(), jumps)
    server = await asyncio.start_server(camera.serve, "127.0.0.1", camera.port)
    try:
        yield camera
    finally:
        server.close()
        for task in list(camera.tasks):
            task.cancel()
        await asyncio.gather(*camera.tasks, return_exceptions=True)
        await server.wait_closed()


@pytest.mark.parametrize(
    "jumps",
    [(), ((40, 3600 * 90_000), (90, -7200 * 90_000), (130, 2**31 + 12345))],
    ids=["steady", "clock-jumps"],
)
async def test_a_quirky_camera_is_recorded(tmp_path: Path, jumps: tuple[tuple[int, int], ...]) -> None:
    """With `clock-jumps` the camera's RTP clock steps an hour ahead, two hours back, then half its range (a
    wrap): segment times still follow the agent's clock, never overlap, and each file is continuous."""
    started = datetime.now(UTC)
    async with quirky_camera(jumps) as camera, supervising(tmp_path) as supervisor:
        now = datetime.now(UTC)
        url = f"rtsp://127.0.0.1:{camera.port}/cam"
        profile = StreamProfile(
            token="m", name="m", role="main", encoding="H264", width=320, height=240, stream_uri=url
        )
        report = CameraReport(endpoint_ref=REF, address="127.0.0.1", state=CameraState.READY, reason="test",
                              profiles=[profile], first_seen=now, last_seen=now, changed_at=now)  # fmt: skip
        supervisor.update(report)
        camera_ref = camera_id(REF)
        await wait_segments(supervisor, camera_ref, 4)
        rows = await complete_segments(supervisor.index, camera_ref)
        stats = supervisor.stats()[camera_ref]
    finished = datetime.now(UTC)
    assert camera.qop_seen and camera.plays == 1
    assert stats.frames_total >= 4 * 25 * 2 and stats.reconnects_total == 0
    for before, after in itertools.pairwise(rows):
        assert before.start < before.end <= after.start
    assert started <= rows[0].start and rows[-1].end <= finished + timedelta(seconds=0.5)
    for row in rows:
        duration = check_segment(tmp_path / "recordings", row)
        assert duration < 2.5  # 2 s segments of a 1 s GOP: a jump inside a file would make it hours long
