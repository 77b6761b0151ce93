"""RTSP transports: the Transport header a client offers, and how a session's RTP and RTCP reach the client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from simulator.rtp import RtpFrame, interleave, interleaved_frame, rtp_packets


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


class MediaTransport(Protocol):
    def send(self, frame: RtpFrame, seq: int, timestamp: int, ssrc: int) -> int:
        """Send one frame's packets; return the bytes queued."""

    def send_control(self, packet: bytes) -> int:
        """Send one RTCP packet; return the bytes queued."""

    def buffered(self) -> int:
        """Bytes queued and not yet sent."""


class TcpInterleaved:
    """RTP over the RTSP connection, '$'-framed on an interleaved channel."""

    def __init__(self, transport: asyncio.WriteTransport, channel: int, control_channel: int) -> None:
        self._transport = transport
        self.channel = channel
        self.control_channel = control_channel

    def send(self, frame: RtpFrame, seq: int, timestamp: int, ssrc: int) -> int:
        if self._transport.is_closing():
            return 0
        data = interleaved_frame(frame, seq, timestamp, ssrc, self.channel)
        self._transport.write(data)
        return len(data)

    def send_control(self, packet: bytes) -> int:
        if self._transport.is_closing():
            return 0
        data = interleave(packet, self.control_channel)
        self._transport.write(data)
        return len(data)

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size()


class UdpUnicast:
    """RTP datagrams from the server's RTP port to the client's RTP port; RTCP between the RTCP ports."""

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        control: asyncio.DatagramTransport,
        host: str,
        ports: tuple[int, int],
    ) -> None:
        self._transport = transport
        self._control = control
        self._address = (host, ports[0])
        self._control_address = (host, ports[1])

    def send(self, frame: RtpFrame, seq: int, timestamp: int, ssrc: int) -> int:
        if self._transport.is_closing():
            return 0
        sent = 0
        for packet in rtp_packets(frame, seq, timestamp, ssrc):
            self._transport.sendto(packet, self._address)
            sent += len(packet)
        return sent

    def send_control(self, packet: bytes) -> int:
        if self._control.is_closing():
            return 0
        self._control.sendto(packet, self._control_address)
        return len(packet)

    def buffered(self) -> int:
        # Selector datagram transports queue when the socket would block; typeshed does not declare the method.
        size: Callable[[], int] | None = getattr(self._transport, "get_write_buffer_size", None)
        return size() if size is not None else 0
