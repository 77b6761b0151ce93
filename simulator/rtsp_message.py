"""RTSP 1.0 messages (RFC 2326) on the wire: reading bounded requests and interleaved packets, writing responses."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 16 * 1024
"""A request line and its headers must fit in this; the reader's buffer limit is set to it."""
MAX_BODY_BYTES = 4096
"""GET_PARAMETER and SET_PARAMETER bodies are tiny; anything larger is refused."""

_METHOD = re.compile(r"[A-Z][A-Z_]{0,31}")

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    453: "Not Enough Bandwidth",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "RTSP Version Not Supported",
}


class BadRequest(Exception):
    """The peer sent something that is not an RTSP request; answer 400 (or `status`) and close."""

    def __init__(self, reason: str, status: int = 400, cseq: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.cseq = cseq


@dataclass(frozen=True)
class Request:
    method: str
    uri: str
    headers: dict[str, str]
    """Lower-cased names; a repeated header keeps its values joined by ', '."""
    body: bytes = b""

    @property
    def cseq(self) -> str:
        return self.headers["cseq"]

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Interleaved:
    """A '$'-framed packet the client sent on the RTSP connection (RTCP receiver reports, usually)."""

    channel: int
    data: bytes


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    close: bool = False
    """Close the connection after sending."""

    def encode(self, cseq: str | None) -> bytes:
        lines = [f"RTSP/1.0 {self.status} {REASONS.get(self.status, 'Error')}"]
        if cseq is not None:
            lines.append(f"CSeq: {cseq}")
        lines.append("Server: ketnoi-simulator")
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        if self.body or self.status != 200:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def _clean_cseq(value: str) -> str | None:
    """A CSeq we may echo back: digits only (never reflect arbitrary bytes into our own headers)."""
    value = value.strip()
    return value if value.isdigit() and len(value) <= 10 else None


def parse_head(head: bytes) -> Request:
    """Parse a request line and headers (no body). Raises BadRequest."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("request is not UTF-8") from exc
    lines = text.split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not name or any(ch in name for ch in " \t"):
            raise BadRequest("malformed header line")
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    cseq = _clean_cseq(headers.get("cseq", ""))
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _METHOD.fullmatch(parts[0]):
        raise BadRequest("malformed request line", cseq=cseq)
    method, uri, version = parts
    if version != "RTSP/1.0":
        raise BadRequest("unsupported version", 505, cseq)
    if cseq is None:
        raise BadRequest("missing or invalid CSeq")
    headers["cseq"] = cseq
    return Request(method, uri, headers)


async def read_message(reader: asyncio.StreamReader, header_timeout_s: float) -> Request | Interleaved | None:
    """The next request or interleaved packet; None at a clean end of stream. Raises BadRequest.

    Waits as long as needed for the first byte (the caller bounds idle time); the rest of the message must
    arrive within `header_timeout_s`.
    """
    first = await reader.read(1)
    while first in (b"\r", b"\n"):  # stray line ends between requests
        first = await reader.read(1)
    if not first:
        return None
    try:
        async with asyncio.timeout(header_timeout_s):
            if first == b"$":
                head = await reader.readexactly(3)
                return Interleaved(head[0], await reader.readexactly(int.from_bytes(head[1:3], "big")))
            try:
                raw = first + await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError as exc:
                raise BadRequest("request headers too large", 413) from exc
            if len(raw) > MAX_HEADER_BYTES:
                raise BadRequest("request headers too large", 413)
            request = parse_head(raw[:-4])
            length_text = request.header("content-length") or "0"
            if not length_text.isdigit():
                raise BadRequest("bad Content-Length", cseq=request.cseq)
            length = int(length_text)
            if length > MAX_BODY_BYTES:
                raise BadRequest("request body too large", 413, request.cseq)
            body = await reader.readexactly(length) if length else b""
    except TimeoutError as exc:
        raise BadRequest("request too slow", 400) from exc
    except asyncio.IncompleteReadError:
        return None
    return Request(request.method, request.uri, request.headers, body)
