"""One RTSP client connection of a simulated camera: its requests, its session and the media sent to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from common.redact import strip_credentials
from simulator.rtsp_auth import RtspAuth
from simulator.rtsp_feed import WRITE_BUFFER_LIMIT, RtpSender, StreamFeed
from simulator.rtsp_message import BadRequest, Interleaved, Request, Response, read_message
from simulator.rtsp_transport import MediaTransport, TcpInterleaved, UdpUnicast, open_udp_pair, parse_transport
from simulator.spec import CameraSpec

logger = logging.getLogger(__name__)

TRACK = "trackID=0"
CLOSE_TIMEOUT_S = 2.0
METHODS = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER, TEARDOWN"


@dataclass
class RtspStats:
    """Counters for tests and benchmarks."""

    connections_opened: int = 0
    connections_active: int = 0
    sessions_opened: int = 0
    sessions_active: int = 0
    bytes_sent: int = 0
    frames_skipped: int = 0
    """Frames not sent to slow readers (their write buffer was full)."""
    bad_requests: int = 0
    unauthorized: int = 0


@dataclass
class ServerContext:
    """What every connection of one camera's RTSP server shares."""

    spec: CameraSpec
    auth: RtspAuth
    feeds: dict[str, StreamFeed]
    base_url: str
    stats: RtspStats = field(default_factory=RtspStats)
    max_sessions: int = 64
    session_timeout_s: float = 60.0
    header_timeout_s: float = 10.0
    write_buffer_limit: int = WRITE_BUFFER_LIMIT


class Session:
    """An RTSP session: one stream (the camera profile's video track) to one client."""

    def __init__(self, feed: StreamFeed, sender: RtpSender, udp: tuple[asyncio.DatagramTransport, ...] = ()) -> None:
        self.id = secrets.token_hex(8)
        self.feed = feed
        self.sender = sender
        self.udp = udp
        self.playing = False
        self.stalled = False
        self.quirks_started = False

    def close(self) -> None:
        self.feed.unsubscribe(self.sender)
        for transport in self.udp:
            transport.close()


Handler = Callable[[Request], Awaitable[Response | None]]


class RtspConnection:
    """Serves one TCP connection until the client leaves, times out, or the server stops."""

    def __init__(self, ctx: ServerContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.ctx = ctx
        self._reader = reader
        self._writer = writer
        self._session: Session | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_activity = asyncio.get_running_loop().time()
        peer = writer.get_extra_info("peername")
        self._peer_host = str(peer[0]) if peer else ""
        self._handlers: dict[str, Handler] = {
            "OPTIONS": self._options,
            "DESCRIBE": self._describe,
            "SETUP": self._setup,
            "PLAY": self._play,
            "PAUSE": self._pause,
            "GET_PARAMETER": self._keepalive,
            "SET_PARAMETER": self._keepalive,
            "TEARDOWN": self._teardown,
        }

    @property
    def name(self) -> str:
        return self.ctx.spec.name

    def touch(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()

    def close(self) -> None:
        """Close the connection once what is queued is sent; serve() then ends (and aborts if the flush hangs)."""
        self._writer.close()
        self._reader.feed_eof()  # a closing transport stops reading: end the request loop now, not at flush

    def abort(self) -> None:
        """Close the connection now, dropping whatever is queued (server stop)."""
        self._writer.transport.abort()

    async def serve(self) -> None:
        self._spawn(self._watchdog(), "watchdog")
        try:
            await self._serve_requests()
        except (ConnectionError, OSError) as exc:
            logger.debug("%s: RTSP connection from %s ended: %s", self.name, self._peer_host, exc)
        finally:
            if self._session is not None:
                self._end_session()
            for task in self._tasks:
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._writer.close()
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self._writer.wait_closed()
            except TimeoutError:  # a peer that reads nothing would hold the flush forever
                self.abort()
            except (ConnectionError, OSError):
                pass

    async def _serve_requests(self) -> None:
        while not self._writer.is_closing():
            try:
                message = await read_message(self._reader, self.ctx.header_timeout_s)
            except BadRequest as exc:
                self.ctx.stats.bad_requests += 1
                logger.debug("%s: bad RTSP request from %s: %s", self.name, self._peer_host, exc)
                self._write(Response(exc.status, close=True), exc.cseq)
                return
            if message is None:
                return
            self.touch()
            if isinstance(message, Interleaved):
                continue  # RTCP receiver reports over TCP: activity only
            response = await self._handle(message)
            self.touch()  # the first DESCRIBE may wait for an encode: that is not the client being idle
            if response is not None:
                self._write(response, message.cseq)
                if response.close:
                    return

    async def _handle(self, request: Request) -> Response | None:
        handler = self._handlers.get(request.method)
        if handler is None:
            response: Response | None = Response(501, [("Public", METHODS)])
        elif request.method != "OPTIONS" and not self.ctx.auth.check(request.method, request.header("authorization")):
            self.ctx.stats.unauthorized += 1
            response = Response(401, self.ctx.auth.challenge())
        else:
            response = await handler(request)
        status = response.status if response is not None else 200
        logger.debug("%s: %s %s -> %d", self.name, request.method, strip_credentials(request.uri), status)
        return response

    def _write(self, response: Response, cseq: str | None) -> None:
        if self._writer.is_closing():
            return
        self._writer.write(response.encode(cseq))
        if self._writer.transport.get_write_buffer_size() > 2 * self.ctx.write_buffer_limit:
            logger.debug("%s: RTSP client %s does not read its replies; closing", self.name, self._peer_host)
            self.close()

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"rtsp-{self.name}-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watchdog(self) -> None:
        """Close the connection when neither requests nor RTCP have arrived for the session timeout."""
        loop = asyncio.get_running_loop()
        timeout = self.ctx.session_timeout_s
        while True:
            idle = loop.time() - self._last_activity
            if idle >= timeout:
                logger.debug("%s: RTSP client %s idle for %.0f s; closing", self.name, self._peer_host, idle)
                self.close()
                return
            await asyncio.sleep(timeout - idle)

    # -- paths and sessions ---------------------------------------------------------------------------------------

    def _feed_for(self, uri: str) -> StreamFeed | None:
        parts = urlsplit(uri).path.strip("/").split("/")
        if len(parts) > 2 or (len(parts) == 2 and parts[1] != TRACK):
            return None
        return self.ctx.feeds.get(parts[0])

    def _session_for(self, request: Request) -> Session | None:
        header = request.header("session")
        if self._session is None or header is None:
            return None
        return self._session if header.split(";")[0].strip() == self._session.id else None

    def _session_header(self, session: Session) -> tuple[str, str]:
        return ("Session", f"{session.id};timeout={max(1, round(self.ctx.session_timeout_s))}")

    def _end_session(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
            self.ctx.stats.sessions_active -= 1

    def _count_sent(self, sent: int) -> None:
        self.ctx.stats.bytes_sent += sent

    def _count_skipped(self) -> None:
        self.ctx.stats.frames_skipped += 1

    # -- methods ------------------------------------------------------------------------------------------------

    async def _options(self, request: Request) -> Response:
        return Response(200, [("Public", METHODS)])

    async def _describe(self, request: Request) -> Response:
        feed = self._feed_for(request.uri)
        if feed is None:
            return Response(404)
        loop = await feed.encoded()
        profile = feed.profile
        host = self.ctx.spec.host
        sdp = "\r\n".join(
            [
                "v=0",
                f"o=- {secrets.randbits(31)} 1 IN IP4 {host}",
                "s=ketnoi simulated camera",
                "c=IN IP4 0.0.0.0",
                "t=0 0",
                "a=control:*",
                "a=range:npt=0-",
                "m=video 0 RTP/AVP 96",
                *loop.sdp_lines(),
                f"a=framerate:{profile.fps}",
                f"a=x-dimensions:{profile.width},{profile.height}",
                f"a=control:{TRACK}",
                "",
            ]
        )
        headers = [("Content-Base", f"{self.ctx.base_url}/{profile.path}/"), ("Content-Type", "application/sdp")]
        return Response(200, headers, sdp.encode("ascii"))

    async def _setup(self, request: Request) -> Response:
        feed = self._feed_for(request.uri)
        if feed is None:
            return Response(404)
        wanted = parse_transport(request.header("transport") or "")
        if wanted is None:
            return Response(461)
        if self._session is not None:
            if self._session_for(request) is None:
                return Response(454)
            return Response(459)  # one track per session; a second SETUP is not something we serve
        if self.ctx.stats.sessions_active >= self.ctx.max_sessions:
            return Response(453)
        await feed.encoded()
        media: MediaTransport
        udp: tuple[asyncio.DatagramTransport, ...] = ()
        if wanted.tcp:
            media = TcpInterleaved(self._writer.transport, *wanted.channels)
            description = f"RTP/AVP/TCP;unicast;interleaved={wanted.channels[0]}-{wanted.channels[1]}"
        else:
            rtp, rtcp = await open_udp_pair(self.ctx.spec.host, self.touch)
            udp = (rtp, rtcp)
            media = UdpUnicast(rtp, rtcp, self._peer_host, wanted.client_ports)
            server_ports = f"{rtp.get_extra_info('sockname')[1]}-{rtcp.get_extra_info('sockname')[1]}"
            description = (
                f"RTP/AVP;unicast;client_port={wanted.client_ports[0]}-{wanted.client_ports[1]};"
                f"server_port={server_ports}"
            )
        sender = RtpSender(
            media,
            catch_up=wanted.tcp,
            on_sent=self._count_sent,
            on_skipped=self._count_skipped,
            write_limit=self.ctx.write_buffer_limit,
            clock_offset_s=self.ctx.spec.quirks.clock_offset_s,
        )
        session = Session(feed, sender, udp)
        self._session = session
        self.ctx.stats.sessions_opened += 1
        self.ctx.stats.sessions_active += 1
        transport_header = f"{description};ssrc={sender.ssrc:08X};mode=play"
        return Response(200, [("Transport", transport_header), self._session_header(session)])

    async def _play(self, request: Request) -> Response | None:
        session = self._session_for(request)
        if session is None:
            return Response(454)
        feed = session.feed
        track_url = f"{self.ctx.base_url}/{feed.profile.path}/{TRACK}"
        rtp_info = (
            f"url={track_url};seq={session.sender.seq};rtptime={session.sender.next_timestamp(feed.current_time())}"
        )
        headers = [self._session_header(session), ("Range", "npt=0.000-"), ("RTP-Info", rtp_info)]
        self._write(Response(200, headers), request.cseq)  # the reply must precede the first media packet
        if not session.playing and not session.stalled:
            session.playing = True
            session.sender.restart()
            await feed.subscribe(session.sender)
            if not session.quirks_started:
                session.quirks_started = True
                self._start_quirks(session)
        return None

    async def _pause(self, request: Request) -> Response:
        session = self._session_for(request)
        if session is None:
            return Response(454)
        if session.playing:
            session.playing = False
            session.feed.unsubscribe(session.sender)
        return Response(200, [self._session_header(session)])

    async def _keepalive(self, request: Request) -> Response:
        if request.header("session") is not None and self._session_for(request) is None:
            return Response(454)
        return Response(200, [self._session_header(self._session)] if self._session else [])

    async def _teardown(self, request: Request) -> Response:
        if self._session_for(request) is None:
            return Response(454)
        self._end_session()
        return Response(200)

    # -- quirks -------------------------------------------------------------------------------------------------

    def _start_quirks(self, session: Session) -> None:
        quirks = self.ctx.spec.quirks
        if quirks.stall_after_s is not None:
            self._spawn(self._stall_later(session, quirks.stall_after_s), "stall")
        if quirks.drop_after_s is not None:
            self._spawn(self._drop_later(quirks.drop_after_s), "drop")

    async def _stall_later(self, session: Session, delay: float) -> None:
        await asyncio.sleep(delay)
        logger.debug("%s: quirk: stalling the stream to %s (connection stays open)", self.name, self._peer_host)
        session.stalled = True
        session.feed.unsubscribe(session.sender)

    async def _drop_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        logger.debug("%s: quirk: dropping the RTSP connection of %s", self.name, self._peer_host)
        self.close()
