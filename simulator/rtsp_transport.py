"""RTSP transports: the Transport header a client offers, and the UDP port pair a session sends from."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TransportRequest:
    tcp: bool
    channels: tuple[int, int] = (0, 1)
    client_ports: tuple[int, int] = (0, 0)


def _pair(text: str, low: int, high: int) -> tuple[int, int] | None:
    first, _, second = text.partition("-")
    if not first.isdigit() or (second and not second.isdigit()):
        return None
    a = int(first)
    b = int(second) if second else a + 1
    return (a, b) if low <= a <= high and low <= b <= high else None


def parse_transport(value: str) -> TransportRequest | None:
    """The first transport in a SETUP's Transport header that we serve: unicast RTP over TCP or UDP."""
    for option in value.split(","):
        fields = [item.strip() for item in option.split(";")]
        proto = fields[0].upper()
        params = {name.lower(): val for name, _, val in (item.partition("=") for item in fields[1:])}
        if "multicast" in params:
            continue
        if proto == "RTP/AVP/TCP":
            channels = _pair(params.get("interleaved", "0-1"), 0, 255)
            if channels is not None:
                return TransportRequest(tcp=True, channels=channels)
        elif proto in ("RTP/AVP", "RTP/AVP/UDP"):
            ports = _pair(params.get("client_port", ""), 1, 65535)
            if ports is not None:
                return TransportRequest(tcp=False, client_ports=ports)
    return None


class _UdpEndpoint(asyncio.DatagramProtocol):
    """A server RTP or RTCP port: what arrives (receiver reports, NAT hole punches) only counts as activity."""

    def __init__(self, on_packet: Callable[[], None]) -> None:
        self._on_packet = on_packet

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._on_packet()


async def open_udp_pair(
    host: str, on_packet: Callable[[], None]
) -> tuple[asyncio.DatagramTransport, asyncio.DatagramTransport]:
    """Two UDP sockets on `host`, an even RTP port and the next odd one for RTCP when the OS lets us."""
    loop = asyncio.get_running_loop()
    for _ in range(16):
        rtp, _ = await loop.create_datagram_endpoint(lambda: _UdpEndpoint(on_packet), local_addr=(host, 0))
        port = int(rtp.get_extra_info("sockname")[1])
        if port % 2 == 0 and port < 65535:
            try:
                rtcp, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpEndpoint(on_packet), local_addr=(host, port + 1)
                )
            except OSError:
                pass
            else:
                return rtp, rtcp
        rtp.close()
    rtp, _ = await loop.create_datagram_endpoint(lambda: _UdpEndpoint(on_packet), local_addr=(host, 0))
    rtcp, _ = await loop.create_datagram_endpoint(lambda: _UdpEndpoint(on_packet), local_addr=(host, 0))
    return rtp, rtcp
