"""Devices that misbehave in ways the simulator's switches do not cover, each with the state and reason reported.

A small aiohttp server stands in for the broken device (garbage, 401, a huge chunked body with no length, a
redirect, a reply that never ends); a simulated camera subclass points its stream URI outside the site.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from agents.discovery.credentials import CredentialBook
from agents.discovery.scanner import Scanner
from agents.discovery.wsdiscovery import ProbeMatch
from protocol.camera import CameraState
from simulator.camera import SimulatedCamera
from simulator.onvif.profiles import MediaProfile
from tests.agents.cameras import PASSWORD, config, running, spec

HOST = "127.0.1.120"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def scanner(tmp_path: Path) -> AsyncIterator[Scanner]:
    cfg = config(
        tmp_path,
        [],
        deadline_s=1.5,
        camera_credentials=[{"match": "127.0.1.125", "username": "admin", "password": "own-" + PASSWORD}],
    )
    made = Scanner(cfg, CredentialBook.from_config(cfg))
    yield made
    await made.close()


@pytest.fixture
async def device() -> AsyncIterator[Callable[[Handler], Awaitable[None]]]:
    runners: list[web.AppRunner] = []

    async def serve(handler: Handler) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, HOST, 8080).start()

    yield serve
    for runner in runners:
        await runner.cleanup()


def match(host: str = HOST) -> ProbeMatch:
    return ProbeMatch(
        endpoint_ref="urn:uuid:broken-device",
        address=host,
        xaddrs=(f"http://{host}:8080/onvif/device_service",),
        scopes=(),
        types=("dn:NetworkVideoTransmitter",),
    )


async def garbage(request: web.Request) -> web.Response:
    return web.Response(body=b"\x00\x01 this is not XML <<<", content_type="application/soap+xml")


async def unauthorized(request: web.Request) -> web.Response:
    return web.Response(status=401, text="<html>401</html>", content_type="text/html")


async def chunked_huge(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/soap+xml"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b'<?xml version="1.0"?><e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body>')
    block = b"<x>" + b"A" * 65_000 + b"</x>"
    for _ in range(800):  # 52 MB if nobody stops reading
        await response.write(block)
    return response


async def redirect(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "http://127.0.2.1:8080/elsewhere"})


async def never_ends(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/soap+xml"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    while True:
        await response.write(b" ")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("handler", "state", "words"),
    [
        (garbage, CameraState.UNREACHABLE, "unusable reply to GetSystemDateAndTime"),
        (unauthorized, CameraState.AUTH_FAILED, "HTTP 401"),
        (chunked_huge, CameraState.UNREACHABLE, "hostile reply refused: body larger than"),
        (redirect, CameraState.UNREACHABLE, "redirect"),
        (never_ends, CameraState.UNREACHABLE, "timed out after 1.5 s at GetSystemDateAndTime"),
    ],
)
async def test_broken_device(
    scanner: Scanner,
    device: Callable[[Handler], Awaitable[None]],
    handler: Handler,
    state: CameraState,
    words: str,
) -> None:
    await device(handler)
    started = time.monotonic()
    report = await scanner.examine(match())
    assert time.monotonic() - started < 2.5
    assert report.state is state and words in report.reason, report.reason
    assert report.profiles == [] and report.snapshot_uri is None


async def test_nothing_listening_is_unreachable(scanner: Scanner) -> None:
    report = await scanner.examine(match("127.0.1.121"))
    assert report.state is CameraState.UNREACHABLE and "connection refused" in report.reason, report.reason


async def test_an_xaddr_outside_the_networks_is_pending(scanner: Scanner) -> None:
    outside = ProbeMatch("urn:uuid:x", HOST, ("http://127.0.2.9/onvif/device_service",), (), ())
    report = await scanner.examine(outside)
    assert report.state is CameraState.PENDING_APPROVAL and "XAddrs" in report.reason


class StreamsElsewhere(SimulatedCamera):
    """A camera whose stream URIs name a host outside the site's camera networks."""

    def stream_url(self, profile: MediaProfile) -> str:
        return f"rtsp://127.0.2.7:8554/{profile.token}"


async def test_a_stream_uri_outside_the_networks_is_pending(scanner: Scanner) -> None:
    camera = StreamsElsewhere(spec("elsewhere", "127.0.1.122"))
    await camera.start()
    try:
        report = await scanner.examine(match("127.0.1.122"))
    finally:
        await camera.stop()
    assert report.state is CameraState.PENDING_APPROVAL
    assert "stream URI rtsp://127.0.2.7:8554/" in report.reason and "outside the camera networks" in report.reason


async def test_a_per_camera_password_overrides_the_sites(scanner: Scanner) -> None:
    async with running([spec("own", "127.0.1.125", password="own-" + PASSWORD), spec("site", "127.0.1.126")]):
        own, site = await asyncio.gather(scanner.examine(match("127.0.1.125")), scanner.examine(match("127.0.1.126")))
    assert own.state is CameraState.READY, own.reason
    assert site.state is CameraState.READY, site.reason
