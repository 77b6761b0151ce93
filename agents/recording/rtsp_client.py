"""A small RTSP client on asyncio (RFC 2326) for one video track, RTP interleaved in the TCP connection.

Why not PyAV here: FFmpeg's RTSP demuxer reads each interleaved packet with two socket reads and hands every
frame to Python through a blocking call in a thread of its own; reading the socket in the event loop in large
chunks and parsing the `$`-framed packets in place costs a fraction of that (benchmarks/recording.py).

`connect()` runs DESCRIBE (Digest or Basic authentication, as cameras ask), picks the first H.264 or H.265
video track of the SDP, SETUPs it over TCP (interleaved channels 0-1) and PLAYs; afterwards every RTP packet of
the track goes to `on_rtp(data, start, end)` straight from `data_received`. RTSP replies that arrive among the
packets (to the keep-alive OPTIONS) are read and dropped. Every error text is built from the URL without its
credentials; the credentials live only in the `Authenticator`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

logger = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
USER_AGENT = "ketnoi-agent"
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))')
RtpSink = Callable[[bytes, int, int], None]


class RtspError(Exception):
    """The camera refused or broke the RTSP exchange; the text never holds credentials."""


class RtspAuthError(RtspError):
    """The camera refused the credentials (401 after authenticating)."""


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    headers: dict[str, str]
    """Lower-cased names; a repeated header's values joined by a newline."""
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Track:
    """The video track chosen from the SDP."""

    control: str
    """The absolute URL to SETUP."""
    encoding: str
    """H264 or H265."""
    clock_rate: int
    params: tuple[bytes, ...]
    """Parameter sets from the SDP's fmtp (sprop-parameter-sets, sprop-vps/sps/pps), in that order."""


def split_credentials(url: str) -> tuple[str, str, str]:
    """(URL without credentials, user name, password) of an rtsp:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
        raise RtspError("not an rtsp:// URL")
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), user, password


class Authenticator:
    """Answers a camera's challenge: Digest (RFC 2617, MD5, optional qop=auth) when offered, else Basic."""

    def __init__(self, user: str, password: str) -> None:
        self._user = user
        self._password = password
        self._challenge: dict[str, str] | None = None
        self._basic = False
        self._count = 0

    @property
    def ready(self) -> bool:
        return self._basic or self._challenge is not None

    def challenged(self, headers: str) -> bool:
        """Take the WWW-Authenticate header(s) of a 401; False if there is nothing to answer with."""
        if not self._user:
            return False
        for value in headers.split("\n"):
            scheme, _, rest = value.strip().partition(" ")
            if scheme.lower() == "digest":
                params = {m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _PARAM.finditer(rest)}
                if params.get("algorithm", "MD5").upper() == "MD5" and "nonce" in params:
                    self._challenge = params
                    return True
        if any(v.strip().lower().startswith("basic") for v in headers.split("\n")):
            self._basic = True
            return True
        return False

    def header(self, method: str, uri: str) -> str | None:
        if self._challenge is not None:
            c = self._challenge
            realm, nonce = c.get("realm", ""), c["nonce"]
            ha1 = _md5(f"{self._user}:{realm}:{self._password}")
            ha2 = _md5(f"{method}:{uri}")
            fields = [f'username="{self._user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
            if "auth" in [q.strip() for q in c.get("qop", "").split(",")]:
                self._count += 1
                nc, cnonce = f"{self._count:08x}", secrets.token_hex(8)
                response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
                fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
            else:
                response = _md5(f"{ha1}:{nonce}:{ha2}")
            fields.append(f'response="{response}"')
            if "opaque" in c:
                fields.append(f'opaque="{c["opaque"]}"')
            return "Digest " + ", ".join(fields)
        if self._basic:
            token = base64.b64encode(f"{self._user}:{self._password}".encode()).decode("ascii")
            return f"Basic {token}"
        return None


def _retrieve(future: asyncio.Future[Reply]) -> None:
    if not future.cancelled():
        future.exception()


def _md5(text: str) -> str:
    # RFC 2617 Digest is MD5: protocol compatibility with cameras, not a security choice.
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def parse_sdp(sdp: str, base: str) -> Track:
    """The first H.264 or H.265 video track of an SDP; `base` resolves relative control URLs."""
    session_control: str | None = None
    media: list[list[str]] = []
    for line in sdp.splitlines():
        line = line.strip()
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        elif line.startswith("a=control:"):
            session_control = line[10:].strip()
    if session_control and session_control != "*":
        base = urljoin(base, session_control)
    for lines in media:
        if not lines[0].startswith("m=video"):
            continue
        payloads = lines[0].split()[3:]
        control = None
        rtpmap: dict[str, tuple[str, int]] = {}
        fmtp: dict[str, str] = {}
        for line in lines[1:]:
            if line.startswith("a=control:"):
                control = line[10:].strip()
            elif line.startswith("a=rtpmap:"):
                pt, _, rest = line[9:].partition(" ")
                name, _, clock = rest.partition("/")
                digits = clock.split("/")[0].strip()
                rtpmap[pt] = (name.upper(), int(digits) if digits.isdigit() else 90_000)
            elif line.startswith("a=fmtp:"):
                pt, _, rest = line[7:].partition(" ")
                fmtp[pt] = rest
        for pt in payloads:
            encoding, rate = rtpmap.get(pt, ("", 0))
            if encoding not in ("H264", "H265"):
                continue
            url = base if control in (None, "*") else urljoin(base if base.endswith("/") else base + "/", control)
            return Track(url, encoding, rate, _sprop(encoding, fmtp.get(pt, "")))
    raise RtspError("the camera's SDP has no H.264 or H.265 video track")


def _sprop(encoding: str, fmtp: str) -> tuple[bytes, ...]:
    values = dict(p.strip().partition("=")[::2] for p in fmtp.split(";") if "=" in p)
    keys = ["sprop-parameter-sets"] if encoding == "H264" else ["sprop-vps", "sprop-sps", "sprop-pps"]
    found: list[bytes] = []
    for key in keys:
        for item in values.get(key, "").split(","):
            with contextlib.suppress(ValueError):
                if item:
                    found.append(base64.b64decode(item, validate=True))
    return tuple(found)


class RtspConnection(asyncio.Protocol):
    """One TCP connection to a camera: requests and replies, then interleaved RTP to `on_rtp`."""

    def __init__(self, url: str, auth: Authenticator) -> None:
        self.url = url
        self.auth = auth
        self.on_rtp: RtpSink | None = None
        self.track: Track | None = None
        self.rtp_channel = 0
        self.session: str | None = None
        self.session_timeout_s = 60.0
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.bytes_received = 0
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._cseq = 0
        self._pending: dict[int, asyncio.Future[Reply]] = {}

    # -- asyncio.Protocol ---------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        error = RtspError("the camera closed the connection")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        buffer = self._buffer + data if self._buffer else data
        size = len(buffer)
        pos = 0
        on_rtp, channel = self.on_rtp, self.rtp_channel
        while pos < size:
            if buffer[pos] == 0x24:  # '$': an interleaved packet
                if pos + 4 > size:
                    break
                end = pos + 4 + ((buffer[pos + 2] << 8) | buffer[pos + 3])
                if end > size:
                    break
                if buffer[pos + 1] == channel and on_rtp is not None:
                    on_rtp(buffer, pos + 4, end)
                pos = end
                continue
            used = self._message(buffer, pos, size)
            if used < 0:
                return
            if used == 0:
                break
            pos += used
        self._buffer = buffer[pos:] if pos < size else b""
        if len(self._buffer) > MAX_HEAD + MAX_BODY + 70_000:
            self._fail("the camera sent a message too large to be RTSP")

    def _message(self, buffer: bytes, pos: int, size: int) -> int:
        """Parse an RTSP message at `pos`: bytes used, 0 if incomplete, -1 if the connection was failed."""
        head_end = buffer.find(b"\r\n\r\n", pos, pos + MAX_HEAD)
        if head_end < 0:
            if size - pos >= MAX_HEAD:
                self._fail("an RTSP message header was too long")
                return -1
            return 0
        lines = buffer[pos:head_end].decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                headers[key] = f"{headers[key]}\n{value.strip()}" if key in headers else value.strip()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._fail("an RTSP message had a bad Content-Length")
            return -1
        body_start = head_end + 4
        if body_start + length > size:
            return 0
        first = lines[0].split(" ", 2)
        if first[0].startswith("RTSP/") and len(first) >= 2 and first[1].isdigit():
            reply = Reply(
                int(first[1]), first[2] if len(first) > 2 else "", headers, buffer[body_start : body_start + length]
            )
            self._resolve(reply)
        return body_start + length - pos

    def _resolve(self, reply: Reply) -> None:
        try:
            cseq = int(reply.header("cseq") or "-1")
        except ValueError:
            return
        future = self._pending.pop(cseq, None)
        if future is not None and not future.done():
            future.set_result(reply)

    def _fail(self, reason: str) -> None:
        logger.debug("%s: %s", self.url, reason)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RtspError(reason))
        self._pending.clear()
        self.close()

    # -- requests -----------------------------------------------------------------------------------------------

    def send(self, method: str, uri: str, headers: list[tuple[str, str]] | None = None) -> asyncio.Future[Reply]:
        """Send a request; the future is its reply (or RtspError when the connection ends first)."""
        if self._transport is None or self._transport.is_closing():
            raise RtspError("the connection is closed")
        self._cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self._cseq}", f"User-Agent: {USER_AGENT}"]
        authorization = self.auth.header(method, uri)
        if authorization:
            lines.append(f"Authorization: {authorization}")
        if self.session is not None:
            lines.append(f"Session: {self.session}")
        lines += [f"{name}: {value}" for name, value in headers or []]
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)  # a keep-alive's reply is not awaited: its failure is not an error
        self._pending[self._cseq] = future
        self._transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        return future

    async def request(self, method: str, uri: str, headers: list[tuple[str, str]] | None = None) -> Reply:
        """A request that must succeed: authenticates once when challenged; RtspError otherwise."""
        reply = await self.send(method, uri, headers)
        if reply.status == 401 and not self.auth.ready:
            if not self.auth.challenged(reply.header("www-authenticate") or ""):
                raise RtspAuthError(f"{method} {self.url}: 401 (credentials required)")
            reply = await self.send(method, uri, headers)
        if reply.status == 401:
            raise RtspAuthError(f"{method} {self.url}: 401 (credentials refused)")
        if reply.status != 200:
            raise RtspError(f"{method} {self.url}: {reply.status} {reply.reason}")
        return reply

    def pause_reading(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()


async def connect(url: str, sink_for: Callable[[Track], RtpSink]) -> RtspConnection:
    """Connect to `url` (credentials in it), DESCRIBE, SETUP the video track over TCP and PLAY. The caller bounds
    the time (asyncio.timeout) and closes the connection; `connection.track` says what is being received."""
    plain, user, password = split_credentials(url)
    parts = urlsplit(plain)
    host = parts.hostname or ""
    port = parts.port or (322 if parts.scheme == "rtsps" else 554)
    if parts.scheme == "rtsps":
        raise RtspError("rtsps:// is not supported by the recorder's RTSP client")
    loop = asyncio.get_running_loop()
    try:
        _, connection = await loop.create_connection(
            lambda: RtspConnection(plain, Authenticator(user, password)), host, port
        )
    except OSError as exc:
        raise RtspError(f"cannot connect to {plain}: {exc.strerror or exc}") from None
    try:
        reply = await connection.request("DESCRIBE", plain, [("Accept", "application/sdp")])
        base = reply.header("content-base") or reply.header("content-location") or plain
        track = parse_sdp(reply.body.decode("utf-8", "replace"), base)
        reply = await connection.request("SETUP", track.control, [("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")])
        session = (reply.header("session") or "").strip()
        if not session:
            raise RtspError(f"SETUP {plain}: no session in the reply")
        session_id, _, options = session.partition(";")
        connection.session = session_id.strip()
        match = re.search(r"timeout\s*=\s*(\d+)", options)
        if match:
            connection.session_timeout_s = max(5.0, float(match.group(1)))
        channel = re.search(r"interleaved\s*=\s*(\d+)", reply.header("transport") or "")
        connection.rtp_channel = int(channel.group(1)) if channel else 0
        connection.track = track
        connection.on_rtp = sink_for(track)
        await connection.request("PLAY", base, [("Range", "npt=0.000-")])
    except BaseException:
        connection.close()
        raise
    return connection
