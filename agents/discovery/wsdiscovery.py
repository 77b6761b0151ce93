"""A WS-Discovery (2005/04, as ONVIF uses it) probe client: multicast on the site interface plus unicast probes.

One pass sends a Probe for dn:NetworkVideoTransmitter with a fresh MessageID to 239.255.255.250:3702 (from the
site interface's address when configured, otherwise out of every interface but loopback, chosen by index so that
no multicast route is needed) and to each unicast target (rate-limited), collects ProbeMatches for a bounded
wait, and keeps one match per EndpointReference address. Replies are untrusted: oversized, malformed,
DTD-carrying datagrams and matches that do not relate to our probe are dropped (and counted).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lxml import etree

from common.safexml import UnsafeXml, parse

logger = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
PORT = 3702
MAX_DATAGRAM = 64 * 1024
MAX_MATCHES = 4096
"""Devices kept from one pass; a flood of fake endpoint references stops here."""

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "d": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "dn": "http://www.onvif.org/ver10/network/wsdl",
}
PROBE_ACTION = "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe"
MATCHES_ACTION = "http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches"
_ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
_TO = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
_MAX_FIELD = 16


@dataclass(frozen=True)
class ProbeMatch:
    """One device that answered: its stable identity, where it answered from, and what it says about itself."""

    endpoint_ref: str
    address: str
    xaddrs: tuple[str, ...]
    scopes: tuple[str, ...]
    types: tuple[str, ...]


@dataclass
class ProbeStats:
    sent_multicast: int = 0
    sent_unicast: int = 0
    received: int = 0
    dropped: int = 0
    send_errors: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped += 1
        self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + 1


def probe_message(message_id: str) -> bytes:
    """A SOAP 1.2 Probe for ONVIF video transmitters."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:d="{NS["d"]}" xmlns:dn="{NS["dn"]}">'
        "<s:Header>"
        f'<a:Action s:mustUnderstand="1">{PROBE_ACTION}</a:Action>'
        f"<a:MessageID>{message_id}</a:MessageID>"
        f"<a:ReplyTo><a:Address>{_ANONYMOUS}</a:Address></a:ReplyTo>"
        f'<a:To s:mustUnderstand="1">{_TO}</a:To>'
        "</s:Header>"
        "<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>"
        "</s:Envelope>"
    ).encode()


def _words(element: etree._Element | None) -> tuple[str, ...]:
    if element is None or not element.text:
        return ()
    return tuple(element.text.split()[:_MAX_FIELD])


def parse_probe_matches(data: bytes, source: str, message_id: str) -> list[ProbeMatch]:
    """The matches in one datagram that answer `message_id`; ValueError (with a reason) for anything else."""
    root = parse(data, MAX_DATAGRAM)
    if root.tag != f"{{{NS['s']}}}Envelope":
        raise ValueError("not a SOAP 1.2 envelope")
    relates = root.findtext("s:Header/a:RelatesTo", namespaces=NS)
    if relates is None or relates.strip() != message_id:
        raise ValueError("RelatesTo is not our probe")
    action = root.findtext("s:Header/a:Action", namespaces=NS)
    if action is not None and action.strip() != MATCHES_ACTION:
        raise ValueError("not a ProbeMatches")
    out = []
    for match in root.iterfind("s:Body/d:ProbeMatches/d:ProbeMatch", namespaces=NS):
        ref = (match.findtext("a:EndpointReference/a:Address", namespaces=NS) or "").strip()
        if not ref or len(ref) > 256:
            continue
        out.append(
            ProbeMatch(
                endpoint_ref=ref,
                address=source,
                xaddrs=_words(match.find("d:XAddrs", namespaces=NS)),
                scopes=_words(match.find("d:Scopes", namespaces=NS)),
                types=_words(match.find("d:Types", namespaces=NS)),
            )
        )
    if not out:
        raise ValueError("no ProbeMatch with an endpoint reference")
    return out


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, message_id: str, stats: ProbeStats, on_match: Callable[[ProbeMatch], None] | None) -> None:
        self.message_id = message_id
        self.stats = stats
        self.on_match = on_match
        self.matches: dict[str, ProbeMatch] = {}
        self.closed = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.stats.received += 1
        source = str(addr[0])
        try:
            found = parse_probe_matches(data, source, self.message_id)
        except (UnsafeXml, ValueError) as exc:
            self.stats.drop(type(exc).__name__ if isinstance(exc, UnsafeXml) else str(exc))
            logger.debug("ws-discovery: dropped a datagram from %s: %s", source, exc)
            return
        for match in found:
            if match.endpoint_ref not in self.matches and len(self.matches) < MAX_MATCHES:
                self.matches[match.endpoint_ref] = match
                if self.on_match is not None:
                    self.on_match(match)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a unicast target without a responder: expected, not a failure.
        logger.debug("ws-discovery: socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


def multicast_interfaces() -> list[tuple[int, str]]:
    """Every interface but loopback, as (index, name): where the probe goes when no site address is configured."""
    return [(index, name) for index, name in socket.if_nameindex() if name != "lo"]


def _use_interface(sock: socket.socket, index: int) -> None:
    # struct ip_mreqn {multiaddr, address, ifindex}: Linux picks the interface by index, no multicast route needed.
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack("4s4si", b"\0" * 4, b"\0" * 4, index))


def _socket(bind_address: str | None, ttl: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if bind_address is not None:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(bind_address))
        sock.bind((bind_address or "0.0.0.0", 0))
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(frozen=True)
class ProbeResult:
    matches: list[ProbeMatch]
    stats: ProbeStats
    message_id: str


async def probe(
    *,
    wait_s: float,
    bind_address: str | None = None,
    unicast: Sequence[str] = (),
    multicast: bool = True,
    ttl: int = 1,
    rate_per_s: float = 500.0,
    port: int = PORT,
    group: str = MULTICAST_GROUP,
    on_match: Callable[[ProbeMatch], None] | None = None,
) -> ProbeResult:
    """One probe pass: multicast (twice, as UDP may drop one) plus unicast to each target, for `wait_s` seconds.

    `on_match` is called with each new device as soon as it answers (so that its interrogation can start while
    the probe still listens); the result lists them all.
    """
    message_id = f"urn:uuid:{uuid.uuid4()}"
    message = probe_message(message_id)
    stats = ProbeStats()
    loop = asyncio.get_running_loop()
    sock = _socket(bind_address, ttl)
    transport, collector = await loop.create_datagram_endpoint(
        lambda: _Collector(message_id, stats, on_match), sock=sock
    )
    deadline = time.monotonic() + wait_s

    interfaces = [] if bind_address is not None else multicast_interfaces()

    def send_multicast() -> int:
        if bind_address is not None:  # IP_MULTICAST_IF already names the site interface
            return int(send(group))
        sent = 0
        for index, name in interfaces:
            try:
                _use_interface(sock, index)
            except OSError as exc:
                logger.debug("ws-discovery: cannot probe on %s: %s", name, exc)
                continue
            sent += send(group)
        return sent

    def send(target: str) -> bool:
        try:
            transport.sendto(message, (target, port))
        except OSError as exc:
            stats.send_errors += 1
            logger.debug("ws-discovery: cannot send a probe to %s: %s", target, exc)
            return False
        return True

    try:
        if multicast:
            stats.sent_multicast += send_multicast()
        interval = 1.0 / rate_per_s
        next_at = time.monotonic()
        for target in unicast:
            if time.monotonic() >= deadline:
                logger.warning("ws-discovery: probe wait ended before every unicast target was probed")
                break
            stats.sent_unicast += send(target)
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
        if multicast:
            # A repeat (WS-Discovery's own advice for UDP), a little later; same MessageID, so no double counting.
            pause = min(0.1, max(0.0, deadline - time.monotonic()) / 4)
            await asyncio.sleep(pause)
            stats.sent_multicast += send_multicast()
        remaining = deadline - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)
    finally:
        transport.close()
    logger.debug(
        "ws-discovery: %d device(s); sent %d multicast and %d unicast probes; %d datagrams, %d dropped %s",
        len(collector.matches),
        stats.sent_multicast,
        stats.sent_unicast,
        stats.received,
        stats.dropped,
        stats.drop_reasons,
    )
    return ProbeResult(list(collector.matches.values()), stats, message_id)
