"""WS-Discovery (2005/04, as ONVIF uses it) responder for one simulated camera.

Each camera has two UDP sockets on port 3702: one bound to its own address (unicast probes, and the source of
every reply, Hello and Bye), and one bound to the group 239.255.255.250 and joined on the camera's interface
(multicast probes). SO_REUSEADDR lets many cameras (and other processes that set it) share the port in one
network namespace, and IP_MULTICAST_ALL=0 keeps each group socket to the interface it joined. SO_REUSEPORT is
deliberately not set: on Linux it turns the group sockets into a load-balancing group, and each multicast probe
then reached one camera (sometimes one on the wrong interface) instead of all (checked with veth pairs in network
namespaces). Probe matches go unicast to the prober, from the camera's own address.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
import uuid
from collections import deque
from dataclasses import dataclass

from lxml import etree

from simulator.onvif.soap import SoapParseError, parse_xml
from simulator.spec import CameraSpec

logger = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
PORT = 3702
_IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)

SOAP_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
DN = "http://www.onvif.org/ver10/network/wsdl"
TDS = "http://www.onvif.org/ver10/device/wsdl"
_NSMAP = {"soap": SOAP_ENV, "wsa": WSA, "wsd": WSD, "dn": DN, "tds": TDS}
_TO_DISCOVERY = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
_ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
_TYPES = frozenset({(DN, "NetworkVideoTransmitter"), (TDS, "Device")})
_TYPES_TEXT = "dn:NetworkVideoTransmitter tds:Device"


@dataclass(frozen=True)
class Probe:
    message_id: str
    types: frozenset[tuple[str, str]]
    scopes: tuple[str, ...]


def parse_probe(data: bytes) -> Probe | None:
    """The probe in a datagram, or None for anything else (garbage, other messages, hostile XML)."""
    try:
        root = parse_xml(data)
    except SoapParseError:
        return None
    probe = root.find(f"{{{SOAP_ENV}}}Body/{{{WSD}}}Probe")
    if root.tag != f"{{{SOAP_ENV}}}Envelope" or probe is None:
        return None
    message_id = (root.findtext(f"{{{SOAP_ENV}}}Header/{{{WSA}}}MessageID") or "").strip()
    types: set[tuple[str, str]] = set()
    types_node = probe.find(f"{{{WSD}}}Types")
    if types_node is not None:
        for qname in (types_node.text or "").split():
            prefix, _, local = qname.rpartition(":")
            types.add((types_node.nsmap.get(prefix or None, ""), local))
    scopes = tuple((probe.findtext(f"{{{WSD}}}Scopes") or "").split())
    return Probe(message_id=message_id[:256], types=frozenset(types), scopes=scopes)


def scopes_of(spec: CameraSpec) -> tuple[str, ...]:
    return (
        "onvif://www.onvif.org/type/video_encoder",
        "onvif://www.onvif.org/Profile/Streaming",
        f"onvif://www.onvif.org/name/{spec.name}",
        f"onvif://www.onvif.org/hardware/{spec.model}",
        "onvif://www.onvif.org/location/country/vietnam",
    )


def matches(probe: Probe, spec: CameraSpec) -> bool:
    """Every requested type is ours, and every requested scope prefixes one of ours (RFC 3986 rule, simplified)."""
    if not probe.types <= _TYPES:
        return False
    ours = scopes_of(spec)
    return all(any(scope == s or s.startswith(scope.rstrip("/") + "/") for s in ours) for scope in probe.scopes)


def _el(parent: etree._Element, ns: str, tag: str, text: str | None = None) -> etree._Element:
    node = etree.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        node.text = text
    return node


class _Messages:
    """Builds this camera's Hello, Bye and ProbeMatches messages."""

    def __init__(self, spec: CameraSpec) -> None:
        self._spec = spec
        self._instance = str(int(time.time()))
        self._number = 0

    def _envelope(self, action: str, to: str, relates_to: str | None) -> tuple[etree._Element, etree._Element]:
        root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=_NSMAP)
        header = _el(root, SOAP_ENV, "Header")
        _el(header, WSA, "MessageID", f"urn:uuid:{uuid.uuid4()}")
        if relates_to:
            _el(header, WSA, "RelatesTo", relates_to)
        _el(header, WSA, "To", to)
        _el(header, WSA, "Action", f"{WSD}/{action}")
        self._number += 1
        seq = _el(header, WSD, "AppSequence")
        seq.set("InstanceId", self._instance)
        seq.set("MessageNumber", str(self._number))
        return root, _el(root, SOAP_ENV, "Body")

    def _describe(self, node: etree._Element, *, full: bool = True) -> None:
        epr = _el(node, WSA, "EndpointReference")
        _el(epr, WSA, "Address", self._spec.endpoint_ref)
        if full:
            _el(node, WSD, "Types", _TYPES_TEXT)
            _el(node, WSD, "Scopes", " ".join(scopes_of(self._spec)))
            _el(node, WSD, "XAddrs", self._spec.device_xaddr)
        _el(node, WSD, "MetadataVersion", "1")

    def probe_matches(self, probe: Probe) -> bytes:
        root, body = self._envelope("ProbeMatches", _ANONYMOUS, probe.message_id)
        self._describe(_el(_el(body, WSD, "ProbeMatches"), WSD, "ProbeMatch"))
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def hello(self) -> bytes:
        root, body = self._envelope("Hello", _TO_DISCOVERY, None)
        self._describe(_el(body, WSD, "Hello"))
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def bye(self) -> bytes:
        root, body = self._envelope("Bye", _TO_DISCOVERY, None)
        self._describe(_el(body, WSD, "Bye"), full=False)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


class _ProbeProtocol(asyncio.DatagramProtocol):
    def __init__(self, responder: DiscoveryResponder, how: str) -> None:
        self._responder = responder
        self._how = how

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        self._responder.handle(data, (str(addr[0]), int(addr[1])), self._how)

    def error_received(self, exc: Exception) -> None:
        logger.debug("ws-discovery socket error: %s", exc)


def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setblocking(False)
    return sock


class DiscoveryResponder:
    """Answers WS-Discovery probes for one camera; sends Hello on start and Bye on stop."""

    def __init__(self, spec: CameraSpec, *, port: int = PORT, group: str = MULTICAST_GROUP) -> None:
        self._spec = spec
        self._port = port
        self._group = group
        self._messages = _Messages(spec)
        self._unicast: asyncio.DatagramTransport | None = None
        self._multicast: asyncio.DatagramTransport | None = None
        self.answered: deque[tuple[str, str]] = deque(maxlen=1000)
        """(how, prober address) for the latest probes this camera answered: how is 'unicast' or 'multicast'."""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        host = self._spec.host
        unicast = _udp_socket()
        try:
            unicast.bind((host, self._port))
            unicast.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(host))
            unicast.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            unicast.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        except OSError:
            unicast.close()
            raise
        self._unicast, _ = await loop.create_datagram_endpoint(lambda: _ProbeProtocol(self, "unicast"), sock=unicast)
        group = _udp_socket()
        try:
            group.bind((self._group, self._port))
            group.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
            membership = struct.pack("4s4s", socket.inet_aton(self._group), socket.inet_aton(host))
            group.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        except OSError:
            group.close()
            await self.stop(say_bye=False)
            raise
        self._multicast, _ = await loop.create_datagram_endpoint(lambda: _ProbeProtocol(self, "multicast"), sock=group)
        self._send_group(self._messages.hello())

    async def stop(self, *, say_bye: bool = True) -> None:
        if say_bye and self._unicast is not None:
            self._send_group(self._messages.bye())
        for transport in (self._multicast, self._unicast):
            if transport is not None:
                transport.close()
        self._multicast = self._unicast = None

    def _send_group(self, message: bytes) -> None:
        if self._unicast is None:
            return
        try:
            self._unicast.sendto(message, (self._group, self._port))
        except OSError as exc:
            logger.debug("%s: cannot send to %s: %s", self._spec.name, self._group, exc)

    def handle(self, data: bytes, addr: tuple[str, int], how: str) -> None:
        probe = parse_probe(data)
        if probe is None or not matches(probe, self._spec) or self._unicast is None:
            return
        self.answered.append((how, addr[0]))
        logger.debug("%s: answering %s probe from %s:%s", self._spec.name, how, addr[0], addr[1])
        self._unicast.sendto(self._messages.probe_matches(probe), addr)
