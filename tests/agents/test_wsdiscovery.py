"""The WS-Discovery probe client: the Probe it sends, the replies it keeps and the ones it drops."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
from lxml import etree

from agents.discovery.wsdiscovery import NS, parse_probe_matches, probe, probe_message
from tests.agents.cameras import running, spec

MID = "urn:uuid:00000000-0000-4000-8000-000000000001"


def matches_xml(relates_to: str = MID, ref: str = "urn:uuid:cam-1", extra: str = "", head: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{head}'
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:d="{NS["d"]}" xmlns:dn="{NS["dn"]}">'
        "<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action>"
        f"<a:MessageID>urn:uuid:reply</a:MessageID><a:RelatesTo>{relates_to}</a:RelatesTo></s:Header>"
        "<s:Body><d:ProbeMatches><d:ProbeMatch>"
        f"<a:EndpointReference><a:Address>{ref}</a:Address></a:EndpointReference>"
        "<d:Types>dn:NetworkVideoTransmitter</d:Types>"
        "<d:Scopes>onvif://www.onvif.org/name/Lop%20La onvif://www.onvif.org/hardware/X1</d:Scopes>"
        "<d:XAddrs>http://198.18.1.5/onvif/device_service http://[fe80::1]/onvif/device_service</d:XAddrs>"
        f"<d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch>{extra}</d:ProbeMatches></s:Body></s:Envelope>"
    ).encode()


def test_the_probe_is_soap12_for_video_transmitters() -> None:
    root = etree.fromstring(probe_message(MID))
    assert root.findtext("s:Header/a:MessageID", namespaces=NS) == MID
    assert root.findtext("s:Body/d:Probe/d:Types", namespaces=NS) == "dn:NetworkVideoTransmitter"
    assert (root.findtext("s:Header/a:Action", namespaces=NS) or "").endswith("/discovery/Probe")


def test_a_probe_match_is_read() -> None:
    (match,) = parse_probe_matches(matches_xml(), "198.18.1.5", MID)
    assert match.endpoint_ref == "urn:uuid:cam-1" and match.address == "198.18.1.5"
    assert match.xaddrs == ("http://198.18.1.5/onvif/device_service", "http://[fe80::1]/onvif/device_service")
    assert "onvif://www.onvif.org/name/Lop%20La" in match.scopes
    assert match.types == ("dn:NetworkVideoTransmitter",)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (matches_xml(relates_to="urn:uuid:someone-else"), "RelatesTo"),
        (matches_xml(ref=""), "no ProbeMatch"),
        (matches_xml(head='<!DOCTYPE x [<!ENTITY a "b">]>'), "DTD"),
        (b"<not xml", "not well-formed"),
        (b"\x00\xff" * 10, "not well-formed"),
        (matches_xml(extra="<x>" + "A" * 70_000 + "</x>"), "exceeds"),
        (b'<?xml version="1.0"?><x/>', "not a SOAP"),
    ],
)
def test_unusable_datagrams_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_probe_matches(data, "198.18.1.5", MID)


class _Responder(asyncio.DatagramProtocol):
    """A device on 127.0.1.150 that answers every probe with garbage first, then a stranger's reply, then ours."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        mid = etree.fromstring(data).findtext("s:Header/a:MessageID", namespaces=NS)
        assert mid is not None
        self.transport.sendto(b"garbage", addr)
        self.transport.sendto(matches_xml(relates_to="urn:uuid:other", ref="urn:uuid:stranger"), addr)
        self.transport.sendto(matches_xml(relates_to=mid, ref="urn:uuid:fake"), addr)
        self.transport.sendto(matches_xml(relates_to=mid, ref="urn:uuid:fake"), addr)


@pytest.fixture
async def responder() -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.1.150", 3702))
    transport, _ = await loop.create_datagram_endpoint(_Responder, sock=sock)
    yield
    transport.close()


async def test_unicast_probe_keeps_only_our_replies_once(responder: None) -> None:
    result = await probe(wait_s=0.3, unicast=["127.0.1.150", "127.0.1.151"], multicast=False)
    assert [m.endpoint_ref for m in result.matches] == ["urn:uuid:fake"]
    assert result.stats.sent_unicast == 2 and result.stats.dropped == 2
    assert result.stats.drop_reasons.get("RelatesTo is not our probe") == 1


async def test_simulated_cameras_answer_unicast_probes_within_the_wait() -> None:
    async with running([spec("wsd-a", "127.0.1.152"), spec("wsd-b", "127.0.1.153")]) as cameras:
        started = time.monotonic()
        result = await probe(wait_s=0.3, unicast=["127.0.1.152", "127.0.1.153", "127.0.1.154"], multicast=False)
        elapsed = time.monotonic() - started
    assert sorted(m.endpoint_ref for m in result.matches) == sorted(c.spec.endpoint_ref for c in cameras)
    assert all(m.xaddrs == (f"http://{m.address}:8080/onvif/device_service",) for m in result.matches)
    assert 0.3 <= elapsed < 0.6
