"""The simulated cameras' ONVIF services, read by the real onvif-zeep-async client, and their quirks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp
import pytest
import zeep.exceptions
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFError

from simulator.camera import SimulatedCamera
from simulator.onvif.hostile import HUGE_BYTES
from simulator.onvif.wsse import PASSWORD_DIGEST, password_digest
from simulator.spec import CameraSpec, Quirks

PASSWORD = "s3cret-Pa55word"
DEVICE_NS = "http://www.onvif.org/ver10/device/wsdl"

CameraFactory = Callable[..., Awaitable[SimulatedCamera]]


def unique_host() -> str:
    """A loopback address no other test is likely to use at the same time."""
    return f"127.{random.randint(100, 199)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


@pytest.fixture
async def make_camera() -> AsyncIterator[CameraFactory]:
    cameras: list[SimulatedCamera] = []

    async def make(quirks: Quirks | None = None, **fields: object) -> SimulatedCamera:
        spec = CameraSpec(
            name=f"cam-{len(cameras)}",
            host=unique_host(),
            http_port=8080,
            rtsp_port=8554,
            password=PASSWORD,
            serial="SN0001",
            quirks=quirks or Quirks(),
        )
        spec = replace(spec, **fields)  # type: ignore[arg-type]
        camera = SimulatedCamera(spec)
        await camera.start()
        cameras.append(camera)
        return camera

    yield make
    for camera in cameras:
        await camera.stop()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., ONVIFCamera]]:
    made: list[ONVIFCamera] = []

    def make(
        camera: SimulatedCamera, user: str | None = "admin", password: str | None = PASSWORD, **kw: object
    ) -> ONVIFCamera:
        client = ONVIFCamera(camera.spec.host, camera.spec.http_port, user, password, no_cache=True, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


def soap(
    operation: str,
    *,
    user: str = "admin",
    password: str = PASSWORD,
    created: str | None = None,
    nonce: bytes | None = None,
    with_token: bool = True,
) -> bytes:
    """A device-service request as a client would send it, with a UsernameToken we control."""
    header = ""
    if with_token:
        nonce = nonce or os.urandom(16)
        created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        digest = password_digest(nonce, created, password)
        header = (
            '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"'
            ' xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">'
            f"<wsse:UsernameToken><wsse:Username>{user}</wsse:Username>"
            f'<wsse:Password Type="{PASSWORD_DIGEST}">{digest}</wsse:Password>'
            f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
            f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
        )
    return (
        '<?xml version="1.0"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">'
        f'<soap:Header>{header}</soap:Header><soap:Body><tds:{operation} xmlns:tds="{DEVICE_NS}"/></soap:Body>'
        "</soap:Envelope>"
    ).encode()


async def post(camera: SimulatedCamera, body: bytes) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(camera.device_xaddr, data=body, headers={"Content-Type": "application/soap+xml"}) as response,
    ):
        return response.status, await response.read()


async def test_onvif_zeep_async_reads_every_operation(
    make_camera: CameraFactory, clients: Callable[..., ONVIFCamera]
) -> None:
    camera = await make_camera()
    client = clients(camera)
    await client.update_xaddrs()
    device = await client.create_devicemgmt_service()
    info = await device.GetDeviceInformation()
    assert (info.Manufacturer, info.Model, info.SerialNumber) == ("Ketnoi Simulator", "SIM-720", "SN0001")
    clock = await device.GetSystemDateAndTime()
    assert abs(clock.UTCDateTime.Date.Year - datetime.now(UTC).year) <= 1
    capabilities = await device.GetCapabilities({"Category": "All"})
    assert capabilities.Media.XAddr == camera.media_xaddr
    services = await device.GetServices({"IncludeCapability": False})
    assert {s.XAddr for s in services} == {camera.device_xaddr, camera.media_xaddr}

    media = await client.create_media_service()
    profiles = await media.GetProfiles()
    sizes = {
        p.token: (p.VideoEncoderConfiguration.Resolution.Width, p.VideoEncoderConfiguration.Resolution.Height)
        for p in profiles
    }
    assert sizes == {"main": (1280, 720), "sub": (640, 360)}
    assert {p.VideoEncoderConfiguration.Encoding for p in profiles} == {"H264"}
    assert {p.VideoEncoderConfiguration.RateControl.FrameRateLimit for p in profiles} == {25}
    for token in ("main", "sub"):
        uri = await media.GetStreamUri(
            {"StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}, "ProfileToken": token}
        )
        assert uri.Uri == f"rtsp://{camera.spec.host}:8554/{token}"
        assert "@" not in uri.Uri and PASSWORD not in uri.Uri
    snapshot_uri = await client.get_snapshot_uri("main")
    assert snapshot_uri == f"http://{camera.spec.host}:8080/snapshot/main.jpg"
    jpeg = await client.get_snapshot("main")  # HTTP Digest
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"

    seen = {(r.operation, r.authenticated) for r in camera.requests}
    assert ("GetProfiles", True) in seen and ("GetStreamUri", True) in seen and ("main", True) in seen
    assert all(r.status == 200 for r in camera.requests if r.service != "snapshot")


async def test_no_or_wrong_credentials_are_refused(
    make_camera: CameraFactory, clients: Callable[..., ONVIFCamera]
) -> None:
    camera = await make_camera()
    for user, password, authless in (
        ("admin", "wrong", False),
        ("intruder", PASSWORD, False),
        ("admin", PASSWORD, True),
    ):
        client = clients(camera, user, password)
        device = await client.create_devicemgmt_service()
        call = device.authless_GetDeviceInformation if authless else device.GetDeviceInformation
        with pytest.raises(zeep.exceptions.Fault) as caught:
            await call()
        assert caught.value.subcodes is not None
        assert [code.localname for code in caught.value.subcodes] == ["NotAuthorized"]
        # The clock is readable without credentials.
        assert (await device.authless_GetSystemDateAndTime()).UTCDateTime is not None
    refused = [r for r in camera.requests if r.operation == "GetDeviceInformation"]
    assert [(r.authenticated, r.status) for r in refused] == [(False, 400)] * 3


async def test_stale_created_and_replayed_nonce_are_refused(make_camera: CameraFactory) -> None:
    camera = await make_camera()
    status, body = await post(camera, soap("GetDeviceInformation"))
    assert status == 200 and b"SIM-720" in body
    old = datetime.fromtimestamp(time.time() - 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, body = await post(camera, soap("GetDeviceInformation", created=old))
    assert status == 400 and b"ter:NotAuthorized" in body
    nonce = os.urandom(16)
    assert (await post(camera, soap("GetDeviceInformation", nonce=nonce)))[0] == 200
    status, body = await post(camera, soap("GetDeviceInformation", nonce=nonce))
    assert status == 400 and b"ter:NotAuthorized" in body
    status, body = await post(camera, soap("GetDeviceInformation", with_token=False))
    assert status == 400 and b"ter:NotAuthorized" in body


async def test_skewed_clock_authenticates_with_the_offset(
    make_camera: CameraFactory, clients: Callable[..., ONVIFCamera]
) -> None:
    camera = await make_camera(Quirks(clock_offset_s=1e7))
    naive = clients(camera)
    device = await naive.create_devicemgmt_service()
    clock = (await device.GetSystemDateAndTime()).UTCDateTime
    reported = datetime(
        clock.Date.Year,
        clock.Date.Month,
        clock.Date.Day,
        clock.Time.Hour,
        clock.Time.Minute,
        clock.Time.Second,
        tzinfo=UTC,
    )
    assert abs(reported.timestamp() - (time.time() + 1e7)) < 5
    with pytest.raises(zeep.exceptions.Fault):
        await device.GetDeviceInformation()

    adjusted = clients(camera, adjust_time=True)
    await adjusted.update_xaddrs()
    info = await (await adjusted.create_devicemgmt_service()).GetDeviceInformation()
    assert info.Model == "SIM-720"
    profiles = await (await adjusted.create_media_service()).GetProfiles()
    assert len(profiles) == 2


async def test_broken_get_services_faults_and_client_falls_back(
    make_camera: CameraFactory, clients: Callable[..., ONVIFCamera]
) -> None:
    camera = await make_camera(Quirks(broken_get_services=True))
    status, body = await post(camera, soap("GetServices"))
    assert status == 500 and b"env:Fault" in body and b"ActionNotSupported" in body
    client = clients(camera)
    await client.update_xaddrs()  # GetServices fails, GetCapabilities is used instead
    profiles = await (await client.create_media_service()).GetProfiles()
    assert len(profiles) == 2
    operations = [r.operation for r in camera.requests]
    assert "GetServices" in operations and "GetCapabilities" in operations


async def test_no_auth_camera_answers_without_credentials(make_camera: CameraFactory) -> None:
    camera = await make_camera(Quirks(no_auth=True))
    status, body = await post(camera, soap("GetDeviceInformation", with_token=False))
    assert status == 200 and b"SIM-720" in body
    async with aiohttp.ClientSession() as session, session.get(camera.snapshot_urls["sub"]) as response:
        assert response.status == 200 and (await response.read())[:2] == b"\xff\xd8"


async def test_snapshot_needs_credentials(make_camera: CameraFactory) -> None:
    camera = await make_camera()
    url = camera.snapshot_urls["main"]
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Digest ")
        async with session.get(url, headers={"Authorization": aiohttp.encode_basic_auth("admin", "nope")}) as response:
            assert response.status == 401
        async with session.get(
            url, headers={"Authorization": aiohttp.encode_basic_auth("admin", PASSWORD)}
        ) as response:
            assert response.status == 200 and (await response.read())[:2] == b"\xff\xd8"
        digest = aiohttp.DigestAuthMiddleware("admin", PASSWORD)
        async with session.get(url, middlewares=(digest,)) as response:
            assert response.status == 200
        wrong = aiohttp.DigestAuthMiddleware("admin", "nope")
        async with session.get(url, middlewares=(wrong,)) as response:
            assert response.status == 401


@pytest.mark.parametrize(
    ("kind", "marks"),
    [
        ("entities", (b"<!DOCTYPE", b"<!ENTITY lol9", b"&lol9;")),
        ("dtd", (b"<!DOCTYPE", b"<!ATTLIST")),
        ("external", (b"<!DOCTYPE", b'SYSTEM "file:///etc/passwd"', b'SYSTEM "http://198.18.0.1/x"', b"&file;")),
    ],
)
async def test_hostile_replies_are_what_they_claim(
    make_camera: CameraFactory, kind: str, marks: tuple[bytes, ...]
) -> None:
    camera = await make_camera(Quirks(hostile_soap=kind))
    status, body = await post(camera, soap("GetSystemDateAndTime", with_token=False))
    assert status == 200 and b"<!DOCTYPE" not in body  # the clock stays honest
    status, body = await post(camera, soap("GetDeviceInformation"))
    assert status == 200
    for mark in marks:
        assert mark in body
    status, body = await post(camera, soap("GetDeviceInformation", password="wrong"))
    assert status == 400 and b"<!DOCTYPE" not in body  # only authenticated calls get the hostile reply


async def test_huge_reply_is_over_50_megabytes(make_camera: CameraFactory) -> None:
    camera = await make_camera(Quirks(hostile_soap="huge"))
    total = 0
    async with (
        aiohttp.ClientSession() as session,
        session.post(camera.device_xaddr, data=soap("GetDeviceInformation")) as response,
    ):
        assert response.status == 200
        async for chunk in response.content.iter_chunked(1 << 20):
            total += len(chunk)
    assert total == HUGE_BYTES >= 50 * 1024 * 1024


async def test_trickled_reply_arrives_in_pieces(make_camera: CameraFactory) -> None:
    camera = await make_camera(Quirks(trickle_bytes_per_s=4000))
    pieces: list[bytes] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(camera.device_xaddr, data=soap("GetDeviceInformation")) as response,
    ):
        assert response.headers.get("Transfer-Encoding") == "chunked"
        async for chunk in response.content.iter_any():
            pieces.append(chunk)
    assert len(pieces) >= 2 and b"SIM-720" in b"".join(pieces)


async def test_slow_reply_outlasts_a_short_timeout(make_camera: CameraFactory) -> None:
    camera = await make_camera(Quirks(slow_reply_s=30))
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(TimeoutError):
            await session.post(camera.device_xaddr, data=soap("GetSystemDateAndTime", with_token=False))


async def test_refused_connections_are_closed_at_once(
    make_camera: CameraFactory, clients: Callable[..., ONVIFCamera]
) -> None:
    camera = await make_camera(Quirks(refuse_connections=True))
    reader, writer = await asyncio.open_connection(camera.spec.host, camera.spec.http_port)
    writer.write(b"POST /onvif/device_service HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    # Closed before our request was read: an EOF or a reset, both a refusal.
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    writer.close()
    device = await clients(camera).create_devicemgmt_service()
    with pytest.raises((ONVIFError, aiohttp.ClientError)):
        await device.GetSystemDateAndTime()


async def test_garbage_and_unknown_operations_get_faults(make_camera: CameraFactory) -> None:
    camera = await make_camera()
    status, body = await post(camera, b"<not-xml")
    assert status == 400 and b"ter:WellFormed" in body
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    status, body = await post(camera, bomb)
    assert status == 400 and b"ter:WellFormed" in body
    status, body = await post(camera, soap("SystemReboot"))
    assert status == 400 and b"ter:ActionNotSupported" in body
    async with aiohttp.ClientSession() as session, session.post(camera.device_xaddr, data=b"x" * 200_000) as response:
        assert response.status == 413


async def test_fifty_cameras_start_quickly() -> None:
    base = random.randint(100, 199)
    cameras = [
        SimulatedCamera(CameraSpec(name=f"fleet-{i}", host=f"127.{base}.200.{i + 2}", password=PASSWORD))
        for i in range(50)
    ]
    started = time.perf_counter()
    try:
        for camera in cameras:
            await camera.start()
        elapsed = time.perf_counter() - started
    finally:
        for camera in cameras:
            await camera.stop()
    assert elapsed < 2.0, f"50 cameras took {elapsed:.2f} s to start"


def _decode_first_frame(url: str) -> tuple[int, int]:
    import av

    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=10) as container:
        for frame in container.decode(video=0):
            return frame.width, frame.height
    raise AssertionError("no frame decoded")


async def test_stream_uri_from_onvif_plays_with_the_site_credentials(
    make_camera: CameraFactory, clients: Callable[..., ONVIFCamera]
) -> None:
    camera = await make_camera()
    client = clients(camera)
    await client.update_xaddrs()
    media = await client.create_media_service()
    uri = await media.GetStreamUri(
        {"StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}, "ProfileToken": "sub"}
    )
    with_credentials = uri.Uri.replace("rtsp://", f"rtsp://admin:{PASSWORD}@", 1)
    async with asyncio.timeout(60):
        assert await asyncio.to_thread(_decode_first_frame, with_credentials) == (640, 360)
