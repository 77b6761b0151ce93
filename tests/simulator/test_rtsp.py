"""The simulated cameras' RTSP server, read by real clients (PyAV, ffprobe) and by a raw socket client."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import av
import pytest

from simulator import video
from simulator.rtsp import RtspServer
from simulator.rtsp_auth import parse_digest
from simulator.spec import CameraSpec, Quirks
from tests.waiting import eventually

PASSWORD = "s3cret:p@ss/word"
CAMERA = "rtsp-cam"  # one name for most tests: its loops are encoded once per test process


def camera(name: str = CAMERA, host: str = "127.0.0.1", **quirks: Any) -> CameraSpec:
    return CameraSpec(name=name, host=host, rtsp_port=0, password=PASSWORD, quirks=Quirks(**quirks))


@contextlib.asynccontextmanager
async def running(spec: CameraSpec, **options: Any) -> AsyncIterator[RtspServer]:
    server = RtspServer(spec, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        assert server.stats.connections_active == 0 and server.sessions_active == 0
        leaked = [t for t in asyncio.all_tasks() if t.get_name().startswith("rtsp-") and not t.done()]
        assert leaked == []


Headers = dict[str, list[str]]


def with_credentials(url: str, password: str = PASSWORD) -> str:
    return url.replace("rtsp://", f"rtsp://admin:{quote(password, safe='')}@", 1)


def basic() -> str:
    return "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


# -- a raw RTSP client, to see exactly what goes on the wire ---------------------------------------------------------


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.cseq = 0
        self.packets: list[tuple[int, bytes]] = []  # interleaved packets seen while waiting for replies
        self.other: list[tuple[int, bytes]] = []  # packets skipped by next_packet (RTCP on channel 1)

    @classmethod
    async def connect(cls, server: RtspServer, receive_buffer: int | None = None) -> RawClient:
        if receive_buffer is None:
            reader, writer = await asyncio.open_connection(server.spec.host, server.port)
            return cls(reader, writer)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before connect: sets the window
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (server.spec.host, server.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=receive_buffer)
        return cls(reader, writer)

    def close(self) -> None:
        self.writer.close()

    async def send(self, method: str, uri: str, headers: dict[str, str] | None = None) -> None:
        self.cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self.cseq}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()

    async def request(self, method: str, uri: str, headers: dict[str, str] | None = None) -> tuple[int, Headers, bytes]:
        await self.send(method, uri, headers)
        async with asyncio.timeout(10):
            while True:
                item = await self.read_item()
                if isinstance(item, tuple):
                    return item
                self.packets.append((item[0], item[1:]))

    async def read_item(self) -> tuple[int, Headers, bytes] | bytes:
        """A reply (status, headers, body) or an interleaved packet (channel byte + RTP packet)."""
        first = await self.reader.readexactly(1)
        if first == b"$":
            head = await self.reader.readexactly(3)
            return head[:1] + await self.reader.readexactly(int.from_bytes(head[1:], "big"))
        raw = (first + await self.reader.readuntil(b"\r\n\r\n")).decode()
        lines = raw.split("\r\n")
        headers: Headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.setdefault(name.strip().lower(), []).append(value.strip())
        body = await self.reader.readexactly(int(headers.get("content-length", ["0"])[0]))
        return int(lines[0].split(" ")[1]), headers, body

    async def next_packet(self, channel: int = 0) -> bytes:
        """The next packet on `channel` (without the interleaved framing); other channels' are kept aside."""
        while True:
            if self.packets:
                got, packet = self.packets.pop(0)
            else:
                item = await self.read_item()
                assert isinstance(item, bytes), item
                got, packet = item[0], item[1:]
            if got == channel:
                return packet
            self.other.append((got, packet))

    async def play(
        self, url: str, auth: str | None = None, transport: str = "RTP/AVP/TCP;unicast;interleaved=0-1"
    ) -> tuple[str, Headers, Headers]:
        """DESCRIBE, SETUP, PLAY: the session id and the SETUP and PLAY reply headers."""
        headers = {"Authorization": auth} if auth else {}
        status, reply, _ = await self.request("DESCRIBE", url, headers)
        assert status == 200, status
        status, reply, _ = await self.request("SETUP", url + "/trackID=0", {**headers, "Transport": transport})
        assert status == 200, status
        session = reply["session"][0].split(";")[0]
        setup = reply
        status, reply, _ = await self.request("PLAY", url, {**headers, "Session": session, "Range": "npt=0.000-"})
        assert status == 200, status
        return session, setup, reply


def nal_type(rtp: bytes) -> int:
    """The H.264 NAL type an RTP payload carries (for FU-A: the fragmented NAL's type)."""
    kind = rtp[12] & 0x1F
    return rtp[13] & 0x1F if kind == 28 else kind


# -- real clients ---------------------------------------------------------------------------------------------------


def read_with_pyav(url: str, transport: str, count: int) -> list[tuple[int, int, bool]]:
    """(width, height, keyframe) of the first `count` decoded frames (blocking: run it in a thread)."""
    frames: list[tuple[int, int, bool]] = []
    with av.open(url, options={"rtsp_transport": transport}, timeout=10) as container:
        for frame in container.decode(video=0):
            frames.append((frame.width, frame.height, bool(frame.key_frame)))
            if len(frames) >= count:
                break
    return frames


@pytest.mark.parametrize(("path", "transport"), [("main", "tcp"), ("sub", "udp"), ("main", "udp"), ("sub", "tcp")])
async def test_pyav_decodes_each_profile_over_tcp_and_udp(
    path: str, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    profile = next(p for p in video.PROFILES if p.path == path)
    async with running(camera(host="127.0.1.21")) as server:
        frames = await asyncio.to_thread(read_with_pyav, with_credentials(server.url(path)), transport, 30)
        assert len(frames) == 30
        assert {(w, h) for w, h, _ in frames} == {(profile.width, profile.height)}
        assert frames[0][2], "the first decoded frame is a keyframe"
        assert server.sessions_opened == 1 and server.bytes_sent > 0
    assert "PLAY" in caplog.text, "the server logged its requests at debug"
    assert PASSWORD not in caplog.text and quote(PASSWORD, safe="") not in caplog.text


async def test_ffprobe_reads_the_main_stream_with_credentials_in_the_url() -> None:
    async with running(camera()) as server:
        process = await asyncio.create_subprocess_exec(
            "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0",
            "-show_entries", "stream=codec_name,width,height", "-of", "json", with_credentials(server.url("main")),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(30):
            out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        stream = json.loads(out)["streams"][0]
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 1280, 720)


@pytest.mark.parametrize("password", ["wrong", None])
async def test_pyav_without_the_right_credentials_gets_401(password: str | None) -> None:
    async with running(camera()) as server:
        url = with_credentials(server.url("sub"), password) if password else server.url("sub")
        with pytest.raises(av.HTTPUnauthorizedError):
            await asyncio.to_thread(read_with_pyav, url, "tcp", 1)
        assert server.stats.unauthorized >= 1 and server.sessions_opened == 0


async def test_digest_and_basic_credentials_are_checked() -> None:
    async with running(camera()) as server:
        client = await RawClient.connect(server)
        url = server.url("main")
        status, headers, _ = await client.request("DESCRIBE", url)
        assert status == 401
        challenges = headers["www-authenticate"]
        assert challenges[0].startswith("Digest ") and challenges[1].startswith("Basic ")
        params = parse_digest(challenges[0])

        def digest(password: str, nonce: str, method: str = "DESCRIBE") -> str:
            def md5(text: str) -> str:
                return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

            ha1 = md5(f"admin:{params['realm']}:{password}")
            response = md5(f"{ha1}:{nonce}:{md5(f'{method}:{url}')}")
            realm = params["realm"]
            return f'Digest username="admin", realm="{realm}", nonce="{nonce}", uri="{url}", response="{response}"'

        assert (await client.request("DESCRIBE", url, {"Authorization": digest(PASSWORD, params["nonce"])}))[0] == 200
        assert (await client.request("DESCRIBE", url, {"Authorization": digest("nope", params["nonce"])}))[0] == 401
        assert (await client.request("DESCRIBE", url, {"Authorization": digest(PASSWORD, "0" * 32)}))[0] == 401
        assert (await client.request("DESCRIBE", url, {"Authorization": digest(PASSWORD, params["nonce"], "PLAY")}))[
            0
        ] == 401
        assert (await client.request("DESCRIBE", url, {"Authorization": basic()}))[0] == 200
        wrong_basic = "Basic " + base64.b64encode(b"admin:nope").decode()
        assert (await client.request("DESCRIBE", url, {"Authorization": wrong_basic}))[0] == 401
        assert (await client.request("OPTIONS", url))[0] == 200
        client.close()


async def test_no_auth_quirk_serves_without_credentials() -> None:
    async with running(camera(no_auth=True)) as server:
        frames = await asyncio.to_thread(read_with_pyav, server.url("sub"), "tcp", 5)
        assert len(frames) == 5


# -- what goes on the wire ------------------------------------------------------------------------------------------


async def test_describe_setup_play_and_the_first_packets() -> None:
    async with running(camera()) as server:
        client = await RawClient.connect(server)
        url = server.url("main")
        status, headers, sdp_bytes = await client.request("DESCRIBE", url, {"Authorization": basic()})
        sdp = sdp_bytes.decode()
        assert headers["content-base"] == [url + "/"] and headers["content-type"] == ["application/sdp"]
        assert "m=video 0 RTP/AVP 96" in sdp and "a=rtpmap:96 H264/90000" in sdp and "a=framerate:25" in sdp
        assert "packetization-mode=1" in sdp and "sprop-parameter-sets=" in sdp and "a=control:trackID=0" in sdp
        assert PASSWORD not in sdp and "admin" not in sdp

        session, setup, play = await client.play(url, basic())
        transport = setup["transport"][0]
        assert transport.startswith("RTP/AVP/TCP;unicast;interleaved=0-1")
        ssrc = int(transport.split("ssrc=")[1].split(";")[0], 16)
        assert setup["session"][0] == f"{session};timeout=60"
        assert play["range"] == ["npt=0.000-"]
        info = dict(item.split("=", 1) for item in play["rtp-info"][0].split(";"))
        assert info["url"] == url + "/trackID=0"

        packets = [await client.next_packet() for _ in range(200)]
        seqs = [int.from_bytes(p[2:4], "big") for p in packets]
        stamps = [int.from_bytes(p[4:8], "big") for p in packets]
        assert seqs[0] == int(info["seq"]) and stamps[0] == int(info["rtptime"])
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
        assert {int.from_bytes(p[8:12], "big") for p in packets} == {ssrc}
        assert {p[1] & 0x7F for p in packets} == {96}
        assert [nal_type(p) for p in packets[:3]] == [7, 8, 5]
        assert all(len(p) <= 12 + 1400 for p in packets)
        # One timestamp per frame, 3600 ticks apart; the marker bit closes each frame.
        frame_ends = [i for i, p in enumerate(packets) if p[1] & 0x80]
        assert len(frame_ends) >= 5
        for end in frame_ends[:-1]:
            assert (stamps[end + 1] - stamps[end]) & 0xFFFFFFFF == 3600
            assert stamps[end] == stamps[end - 1] or (end > 0 and packets[end - 1][1] & 0x80)
        status, _, _ = await client.request("TEARDOWN", url, {"Authorization": basic(), "Session": session})
        assert status == 200 and server.sessions_active == 0
        client.close()


async def test_sender_reports_carry_the_camera_clock() -> None:
    offset = 1.0e7  # months off, as the quirk says
    async with running(camera(clock_offset_s=offset)) as server:
        client = await RawClient.connect(server)
        await client.play(server.url("sub"), basic())
        first_rtp = await client.next_packet()
        report = await client.next_packet(channel=1)
        assert report[1] == 200 and len(report) == 28
        assert report[4:8] == first_rtp[8:12], "same SSRC as the RTP stream"
        ntp_seconds = int.from_bytes(report[8:12], "big") - 2_208_988_800
        assert abs(ntp_seconds - (time.time() + offset)) < 5
        assert int.from_bytes(report[16:20], "big") == int.from_bytes(first_rtp[4:8], "big")
        client.close()


async def test_pause_then_play_resumes_on_a_keyframe_with_continuous_numbering() -> None:
    async with running(camera()) as server:
        client = await RawClient.connect(server)
        url = server.url("sub")
        session, _, _ = await client.play(url, basic())
        first = [await client.next_packet() for _ in range(20)]
        status, _, _ = await client.request("PAUSE", url, {"Authorization": basic(), "Session": session})
        assert status == 200
        before = [(0, p) for p in first] + [(c, p) for c, p in client.packets if c == 0]
        last = before[-1][1]
        client.packets.clear()
        status, _, _ = await client.request("PLAY", url, {"Authorization": basic(), "Session": session})
        assert status == 200
        resumed = await client.next_packet()
        assert nal_type(resumed) == 7, "resumes with SPS, PPS and an IDR"
        assert int.from_bytes(resumed[2:4], "big") == (int.from_bytes(last[2:4], "big") + 1) & 0xFFFF
        assert (int.from_bytes(resumed[4:8], "big") - int.from_bytes(last[4:8], "big")) & 0xFFFFFFFF < 2**31
        client.close()


async def test_pause_and_play_within_a_gop_while_others_watch_never_repeats_a_timestamp() -> None:
    async with running(camera()) as server:
        url = server.url("sub")
        other = await RawClient.connect(server)
        await other.play(url, basic())  # keeps the feed running, so the resume below can catch up on the GOP
        client = await RawClient.connect(server)
        session, _, _ = await client.play(url, basic())
        first = await client.next_packet()
        auth = {"Authorization": basic(), "Session": session}
        assert (await client.request("PAUSE", url, auth))[0] == 200
        last = ([first] + [p for c, p in client.packets if c == 0])[-1]
        client.packets.clear()
        assert (await client.request("PLAY", url, auth))[0] == 200
        resumed = await client.next_packet()
        assert nal_type(resumed) == 7
        assert 0 < (int.from_bytes(resumed[4:8], "big") - int.from_bytes(last[4:8], "big")) & 0xFFFFFFFF < 2**31
        assert int.from_bytes(resumed[2:4], "big") == (int.from_bytes(last[2:4], "big") + 1) & 0xFFFF
        client.close()
        other.close()


async def test_keepalives_and_unknown_sessions() -> None:
    async with running(camera()) as server:
        client = await RawClient.connect(server)
        url = server.url("sub")
        auth = {"Authorization": basic()}
        session, _, _ = await client.play(url, basic())
        assert (await client.request("GET_PARAMETER", url, {**auth, "Session": session}))[0] == 200
        assert (await client.request("SET_PARAMETER", url, {**auth, "Session": session}))[0] == 200
        assert (await client.request("PLAY", url, {**auth, "Session": "nosuchsession"}))[0] == 454
        assert (await client.request("DESCRIBE", server.url("nosuchpath"), auth))[0] == 404
        assert (await client.request("RECORD", url, auth))[0] == 501
        client.close()


async def test_unsupported_transport_and_session_limit() -> None:
    async with running(camera(), max_sessions=1) as server:
        url = server.url("sub")
        one = await RawClient.connect(server)
        await one.play(url, basic())
        two = await RawClient.connect(server)
        multicast = {"Authorization": basic(), "Transport": "RTP/AVP;multicast;port=5000-5001"}
        assert (await two.request("SETUP", url + "/trackID=0", multicast))[0] == 461
        tcp = {"Authorization": basic(), "Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
        assert (await two.request("SETUP", url + "/trackID=0", tcp))[0] == 453
        one.close()
        two.close()


async def test_udp_setup_gives_a_server_port_pair_on_the_camera_address() -> None:
    async with running(camera(host="127.0.1.22")) as server:
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        port = receiver.getsockname()[1]
        client = await RawClient.connect(server)
        _, setup, _ = await client.play(server.url("sub"), basic(), f"RTP/AVP;unicast;client_port={port}-{port + 1}")
        transport = setup["transport"][0]
        assert f"client_port={port}-{port + 1}" in transport
        rtp_port, rtcp_port = (int(x) for x in transport.split("server_port=")[1].split(";")[0].split("-"))
        assert rtcp_port == rtp_port + 1
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(10):
            data, source = await loop.sock_recvfrom(receiver, 2048)
        assert source == ("127.0.1.22", rtp_port) and nal_type(data) == 7
        receiver.close()
        client.close()


# -- quirks ---------------------------------------------------------------------------------------------------------


async def test_stall_quirk_stops_media_but_keeps_answering() -> None:
    async with running(camera(stall_after_s=0.5)) as server:
        client = await RawClient.connect(server)
        url = server.url("sub")
        started = time.monotonic()
        session, _, _ = await client.play(url, basic())
        await client.next_packet()
        # Media flows, then stops: a read that waits 1 s (25 frame intervals) for the next packet must time out.
        async with asyncio.timeout(10):
            while True:
                try:
                    async with asyncio.timeout(1.0):
                        await client.next_packet()
                except TimeoutError:
                    break
        assert time.monotonic() - started >= 0.5
        sent = server.bytes_sent
        status, _, _ = await client.request("GET_PARAMETER", url, {"Authorization": basic(), "Session": session})
        assert status == 200 and client.packets == [] and server.bytes_sent == sent
        assert server.stats.connections_active == 1
        client.close()


async def test_drop_quirk_closes_the_connection_after_play() -> None:
    async with running(camera(drop_after_s=0.3)) as server:
        client = await RawClient.connect(server)
        await client.play(server.url("sub"), basic())
        received = 0
        async with asyncio.timeout(10):
            while True:
                try:
                    await client.next_packet()
                except asyncio.IncompleteReadError:
                    break
                received += 1
        assert received > 0
        await eventually(lambda: server.stats.connections_active == 0)
        client.close()


async def test_refuse_connections_quirk_closes_on_accept() -> None:
    async with running(camera(refuse_connections=True)) as server:
        reader, writer = await asyncio.open_connection(server.spec.host, server.port)
        async with asyncio.timeout(10):
            assert await reader.read() == b"", "closed on accept, before any request"
        writer.close()
        assert server.stats.connections_opened == 0


# -- many clients, hostile clients, slow clients --------------------------------------------------------------------


async def test_twenty_clients_of_one_camera_cost_one_encode() -> None:
    spec = camera(name="twenty-clients-cam")
    before = video.encode_count()
    async with running(spec) as server:
        url = with_credentials(server.url("sub"))
        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:  # all 20 at once, not 6 by 6
            reads = [loop.run_in_executor(pool, read_with_pyav, url, "tcp", 10) for _ in range(20)]
            results = await asyncio.gather(*reads)
        assert [len(frames) for frames in results] == [10] * 20
        assert all(frames[0][2] for frames in results)
        assert server.sessions_opened == 20
    assert video.encode_count() - before == 1


GARBAGE = [
    b"\x00\xff\xfe garbage \x01\r\n\r\n",
    b"HELLO\r\n\r\n",
    b"OPTIONS rtsp://x/ RTSP/1.0\r\n\r\n",  # no CSeq
    b"options rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\n\r\n",
    b"OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\nno colon here\r\n\r\n",
    b"OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -5\r\n\r\n",
    b"OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\n",
    b"OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    b"OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\n\xc3\x28: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
]


@pytest.mark.parametrize("payload", GARBAGE, ids=range(len(GARBAGE)))
async def test_garbage_gets_an_error_and_the_server_keeps_serving(payload: bytes) -> None:
    async with running(camera()) as server:
        reader, writer = await asyncio.open_connection(server.spec.host, server.port)
        writer.write(payload)
        async with asyncio.timeout(10):
            reply = await reader.read()
        assert reply.split(b" ")[:2] in ([b"RTSP/1.0", b"400"], [b"RTSP/1.0", b"413"], [b"RTSP/1.0", b"505"])
        assert server.stats.bad_requests == 1
        writer.close()
        client = await RawClient.connect(server)
        assert (await client.request("OPTIONS", server.url("main")))[0] == 200
        client.close()


async def test_interleaved_packets_from_the_client_are_ignored() -> None:
    async with running(camera()) as server:
        client = await RawClient.connect(server)
        client.writer.write(b"$\x01\x00\x04abcd" + b"$\x00\x00\x00")
        assert (await client.request("OPTIONS", server.url("main")))[0] == 200
        client.close()


async def test_slow_headers_and_idle_connections_are_closed() -> None:
    async with running(camera(), header_timeout_s=0.3, session_timeout_s=0.5) as server:
        slow_reader, slow_writer = await asyncio.open_connection(server.spec.host, server.port)
        slow_writer.write(b"OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq")
        idle_reader, idle_writer = await asyncio.open_connection(server.spec.host, server.port)
        async with asyncio.timeout(10):
            assert (await slow_reader.read()).startswith(b"RTSP/1.0 400")
            assert await idle_reader.read() == b""
        slow_writer.close()
        idle_writer.close()


async def test_a_slow_reader_skips_frames_instead_of_growing_a_buffer() -> None:
    async with running(camera(), write_buffer_limit=64 * 1024) as server:
        client = await RawClient.connect(server, receive_buffer=4096)
        await client.play(server.url("main"), basic())
        await eventually(lambda: server.stats.frames_skipped > 0)  # the client reads nothing meanwhile
        # Once it reads again, it gets whole frames and, after the gap, a keyframe with its parameter sets.
        async with asyncio.timeout(20):
            previous = await client.next_packet()
            while True:
                packet = await client.next_packet()
                gap = (int.from_bytes(packet[2:4], "big") - int.from_bytes(previous[2:4], "big")) & 0xFFFF
                assert gap == 1, "skipping whole frames keeps sequence numbers continuous"
                jump = (int.from_bytes(packet[4:8], "big") - int.from_bytes(previous[4:8], "big")) & 0xFFFFFFFF
                if jump > 3600:
                    assert nal_type(packet) == 7
                    break
                previous = packet
        client.close()


async def test_an_idle_session_is_closed_even_when_its_client_reads_nothing() -> None:
    async with running(camera(), session_timeout_s=1.0, write_buffer_limit=64 * 1024) as server:
        stuck = await RawClient.connect(server, receive_buffer=4096)
        _, setup, _ = await stuck.play(server.url("main"), basic())
        assert setup["session"][0].endswith(";timeout=1")
        await eventually(lambda: server.stats.connections_active == 0 and server.sessions_active == 0)
        stuck.close()


async def test_stop_closes_every_connection() -> None:
    server = RtspServer(camera(), write_buffer_limit=64 * 1024)
    await server.start()
    clients = [await RawClient.connect(server) for _ in range(3)]
    await clients[0].play(server.url("sub"), basic())
    await clients[0].next_packet()
    stuck = await RawClient.connect(server, receive_buffer=4096)  # reads nothing: its queue never drains
    await stuck.play(server.url("main"), basic())
    await eventually(lambda: server.stats.frames_skipped > 0)
    clients.append(stuck)
    async with asyncio.timeout(10):
        await server.stop()
    for client in clients:
        async with asyncio.timeout(10):
            with contextlib.suppress(ConnectionError):
                while await client.reader.read(65536):
                    pass
        client.close()
    assert server.stats.connections_active == 0 and server.sessions_active == 0
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("rtsp-") and not t.done()] == []
