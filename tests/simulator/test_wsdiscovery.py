"""WS-Discovery: two cameras in one process answer one multicast probe each, and only their own unicast probes.

Runs on loopback in the test's own network namespace: the prober sends with IP_MULTICAST_IF=127.0.0.1 and the
cameras' group sockets are joined on lo (via their 127.x addresses), which needs no interface set-up. Other
simulated cameras on this host could answer a multicast probe as well, so results are filtered by endpoint.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from lxml import etree

from simulator.camera import SimulatedCamera
from simulator.spec import CameraSpec
from simulator.wsdiscovery import MULTICAST_GROUP, PORT, WSA, WSD, DiscoveryResponder, matches, parse_probe

ENV = "http://www.w3.org/2003/05/soap-envelope"
REPO = Path(__file__).resolve().parents[2]


def probe(message_id: str, types: str | None = "dn:NetworkVideoTransmitter", scopes: str | None = None) -> bytes:
    types_xml = f"<d:Types>{types}</d:Types>" if types is not None else ""
    scopes_xml = f"<d:Scopes>{scopes}</d:Scopes>" if scopes is not None else ""
    return (
        f'<?xml version="1.0"?><s:Envelope xmlns:s="{ENV}" xmlns:a="{WSA}" xmlns:d="{WSD}"'
        ' xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
        f"<s:Header><a:MessageID>{message_id}</a:MessageID>"
        "<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>"
        f"<a:Action>{WSD}/Probe</a:Action></s:Header>"
        f"<s:Body><d:Probe>{types_xml}{scopes_xml}</d:Probe></s:Body></s:Envelope>"
    ).encode()


class Prober(asyncio.DatagramProtocol):
    """Collects every datagram that comes back to the probing socket."""

    def __init__(self) -> None:
        self.replies: list[tuple[bytes, tuple[str, int]]] = []
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        self.replies.append((data, (str(addr[0]), int(addr[1]))))
        self.arrived.set()

    def matches_for(self, message_id: str) -> dict[str, tuple[str, etree._Element]]:
        """Endpoint reference -> (sender address, ProbeMatch) for the replies to one probe."""
        found: dict[str, tuple[str, etree._Element]] = {}
        for data, addr in self.replies:
            root = etree.fromstring(data)
            if root.findtext(f"{{{ENV}}}Header/{{{WSA}}}RelatesTo") != message_id:
                continue
            match = root.find(f"{{{ENV}}}Body/{{{WSD}}}ProbeMatches/{{{WSD}}}ProbeMatch")
            assert match is not None
            epr = match.findtext(f"{{{WSA}}}EndpointReference/{{{WSA}}}Address")
            assert epr
            found[epr] = (addr[0], match)
        return found

    async def wait_for(self, message_id: str, endpoints: set[str], deadline_s: float = 5.0) -> None:
        deadline = time.monotonic() + deadline_s
        while not endpoints <= set(self.matches_for(message_id)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                return


@pytest.fixture
async def prober() -> AsyncIterator[tuple[asyncio.DatagramTransport, Prober]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    sock.setblocking(False)
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(Prober, sock=sock)
    yield transport, protocol
    transport.close()


async def test_two_cameras_answer_multicast_and_only_their_own_unicast(
    prober: tuple[asyncio.DatagramTransport, Prober],
) -> None:
    transport, replies = prober
    net = f"127.{random.randint(100, 199)}.{random.randint(0, 255)}"
    specs = [CameraSpec(name=f"wsd-{net}-{i}", host=f"{net}.{i + 10}", password="pw-123456") for i in range(2)]
    cameras = [SimulatedCamera(spec) for spec in specs]
    try:
        for camera in cameras:
            await camera.start()
        mine = {spec.endpoint_ref: spec for spec in specs}

        message_id = f"urn:uuid:{uuid.uuid4()}"
        transport.sendto(probe(message_id), (MULTICAST_GROUP, PORT))
        await replies.wait_for(message_id, set(mine))
        found = replies.matches_for(message_id)
        assert set(mine) <= set(found)
        for epr, spec in mine.items():
            sender, match = found[epr]
            assert sender == spec.host  # replies come from the camera's own address
            assert match.findtext(f"{{{WSD}}}XAddrs") == spec.device_xaddr
            types = (match.findtext(f"{{{WSD}}}Types") or "").split()
            assert "dn:NetworkVideoTransmitter" in types
            scopes = (match.findtext(f"{{{WSD}}}Scopes") or "").split()
            assert f"onvif://www.onvif.org/name/{spec.name}" in scopes
            assert "onvif://www.onvif.org/Profile/Streaming" in scopes
            assert match.findtext(f"{{{WSD}}}MetadataVersion") == "1"

        for spec in specs:
            unicast_id = f"urn:uuid:{uuid.uuid4()}"
            transport.sendto(probe(unicast_id, types=None), (spec.host, PORT))
            await replies.wait_for(unicast_id, {spec.endpoint_ref})
            assert set(replies.matches_for(unicast_id)) == {spec.endpoint_ref}

        # Probes for other device types and garbage get no answer (and do not break the responder).
        other_id = f"urn:uuid:{uuid.uuid4()}"
        transport.sendto(b"\x00garbage<<", (specs[0].host, PORT))
        transport.sendto(probe(other_id, types="dn:Printer"), (specs[0].host, PORT))
        last_id = f"urn:uuid:{uuid.uuid4()}"
        transport.sendto(probe(last_id), (specs[0].host, PORT))
        await replies.wait_for(last_id, {specs[0].endpoint_ref})
        assert replies.matches_for(other_id) == {}
        assert set(replies.matches_for(last_id)) == {specs[0].endpoint_ref}
        assert [how for how, _ in cameras[1].discovery.answered] == ["multicast", "unicast"]
    finally:
        for camera in cameras:
            await camera.stop()


async def test_hello_on_start_and_bye_on_stop() -> None:
    group = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    group.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    group.bind((MULTICAST_GROUP, PORT))
    group.setsockopt(
        socket.IPPROTO_IP,
        socket.IP_ADD_MEMBERSHIP,
        socket.inet_aton(MULTICAST_GROUP) + socket.inet_aton("127.0.0.1"),
    )
    group.setblocking(False)
    transport, listener = await asyncio.get_running_loop().create_datagram_endpoint(Prober, sock=group)
    spec = CameraSpec(name=f"hello-{uuid.uuid4()}", host=f"127.{random.randint(100, 199)}.7.{random.randint(2, 250)}")
    responder = DiscoveryResponder(spec)

    def seen(action: str) -> bool:
        for data, _ in listener.replies:
            root = etree.fromstring(data)
            if (
                root.findtext(f"{{{ENV}}}Header/{{{WSA}}}Action") == f"{WSD}/{action}"
                and spec.endpoint_ref in data.decode()
            ):
                return True
        return False

    async def wait_until(action: str) -> bool:
        deadline = time.monotonic() + 5
        while not seen(action) and time.monotonic() < deadline:
            listener.arrived.clear()
            try:
                await asyncio.wait_for(listener.arrived.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        return seen(action)

    try:
        await responder.start()
        assert await wait_until("Hello")
        await responder.stop()
        assert await wait_until("Bye")
    finally:
        await responder.stop(say_bye=False)
        transport.close()


def test_probe_parsing_and_matching() -> None:
    spec = CameraSpec(name="match", host="127.0.0.1")
    plain = parse_probe(probe("urn:uuid:1", types=None))
    assert plain is not None and matches(plain, spec)
    device = parse_probe(probe("urn:uuid:2", types="tds:Device dn:NetworkVideoTransmitter"))
    assert device is not None and matches(device, spec)
    scoped = parse_probe(probe("urn:uuid:3", scopes="onvif://www.onvif.org/name/match"))
    assert scoped is not None and matches(scoped, spec)
    elsewhere = parse_probe(probe("urn:uuid:4", scopes="onvif://www.onvif.org/name/other"))
    assert elsewhere is not None and not matches(elsewhere, spec)
    printer = parse_probe(probe("urn:uuid:5", types="dn:Printer"))
    assert printer is not None and not matches(printer, spec)
    bomb = b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "a">]>' + probe("urn:uuid:6").split(b"?>", 1)[1]
    assert parse_probe(bomb) is None
    assert parse_probe(b"\xff\xfe garbage") is None
    assert parse_probe(b"<a/>") is None


# ---------------------------------------------------------------------------------------------------------------
# Two networks in network namespaces: each camera answers multicast probes from its own network only.

_CLONE_NEWNET = 0x40000000


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _socket_in_netns(netns: str) -> socket.socket:
    """A UDP socket that lives in `netns` (created by a short-lived thread that entered it)."""
    made: list[socket.socket] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
            finally:
                os.close(fd)
            made.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if errors:
        raise RuntimeError(f"cannot create a socket in {netns}") from errors[0]
    return made[0]


@pytest.fixture
def two_networks() -> Iterator[tuple[str, str]]:
    """Namespaces CAM and PROBE joined by two veth pairs: 198.18.10.0/24 and 198.18.20.0/24."""
    tag = f"{os.getpid() % 10000}{random.randint(0, 99)}"
    cam, probe_ns = f"kn-wsd-cam-{tag}", f"kn-wsd-probe-{tag}"
    _ip("netns", "add", cam)
    _ip("netns", "add", probe_ns)
    try:
        for ns in (cam, probe_ns):
            _ip("-n", ns, "link", "set", "lo", "up")
        for net in (10, 20):
            inner, outer = f"kc{net}x{tag}", f"kp{net}x{tag}"
            _ip("link", "add", inner, "netns", cam, "type", "veth", "peer", "name", outer, "netns", probe_ns)
            _ip("-n", cam, "link", "set", inner, "up")
            _ip("-n", probe_ns, "link", "set", outer, "up")
            for last in (10, 11):
                _ip("-n", cam, "addr", "add", f"198.18.{net}.{last}/24", "dev", inner)
            _ip("-n", probe_ns, "addr", "add", f"198.18.{net}.1/24", "dev", outer)
        yield cam, probe_ns
    finally:
        for ns in (cam, probe_ns):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=10)


async def _start_cli(netns: str, first_host: str, cameras: int) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, sys.executable, "-m", "simulator", "--cameras", str(cameras),
        "--first-host", first_host, "--no-auth", "--json", "--name-prefix", f"net{first_host.split('.')[2]}-",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    endpoints: list[str] = []
    deadline = time.monotonic() + 20
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), max(0.01, deadline - time.monotonic()))
        assert line, "the simulator exited before it was ready"
        record = json.loads(line)
        if record == {"ready": True}:
            return proc, endpoints
        endpoints.append(record["endpoint_ref"])


@pytest.mark.netns
async def test_multicast_probes_reach_only_the_cameras_of_that_network(two_networks: tuple[str, str]) -> None:
    cam_ns, probe_ns = two_networks
    procs: list[asyncio.subprocess.Process] = []
    try:
        # Two processes in one namespace share UDP 3702: two cameras on network 10, one on network 20.
        proc10, net10 = await _start_cli(cam_ns, "198.18.10.10", 2)
        procs.append(proc10)
        proc20, net20 = await _start_cli(cam_ns, "198.18.20.10", 1)
        procs.append(proc20)

        loop = asyncio.get_running_loop()
        for net, expected, other in ((10, net10, net20), (20, net20, net10)):
            sock = _socket_in_netns(probe_ns)
            sock.bind((f"198.18.{net}.1", 0))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(f"198.18.{net}.1"))
            sock.setblocking(False)
            transport, replies = await loop.create_datagram_endpoint(Prober, sock=sock)
            try:
                message_id = f"urn:uuid:{uuid.uuid4()}"
                transport.sendto(probe(message_id), (MULTICAST_GROUP, PORT))
                await replies.wait_for(message_id, set(expected))
                # A reply from the other network would have arrived by now; wait for one unicast round trip more.
                unicast_id = f"urn:uuid:{uuid.uuid4()}"
                transport.sendto(probe(unicast_id), (f"198.18.{net}.10", PORT))
                await replies.wait_for(unicast_id, {expected[0]})
                found = replies.matches_for(message_id)
                assert set(found) == set(expected), f"network {net}: {sorted(found)}"
                assert not set(found) & set(other)
                assert {sender for sender, _ in found.values()} <= {f"198.18.{net}.10", f"198.18.{net}.11"}
                assert set(replies.matches_for(unicast_id)) == {expected[0]}
            finally:
                transport.close()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            assert await asyncio.wait_for(proc.wait(), 10) == 0
