"""Speaking protocol/uplink.py to the controller with a raw aiohttp WebSocket client, as an agent would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiohttp import ClientWebSocketResponse, WSMsgType, web

from controller import state
from controller.uplink.codes import make_code
from protocol.camera import CameraReport, CameraState, DeviceInfo, StreamProfile
from protocol.uplink import (
    CONTROLLER_MESSAGE,
    ENROL_PATH,
    PROTOCOL_VERSION,
    UPLINK_PATH,
    ControllerMessage,
    EnrolRequest,
    EnrolResponse,
    Hello,
    Message,
)
from tests.controller.conftest import Client
from tests.waiting import eventually_true

T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)


async def new_code(app: web.Application, unit_id: int, lifetime_s: int = 3600) -> str:
    async with app[state.DB].begin() as session:
        code = await make_code(
            session,
            app[state.SECRET_KEY],
            unit_id=unit_id,
            now=app[state.CLOCK].now(),
            lifetime_s=lifetime_s,
            created_by=None,
        )
    return code.code


async def enrol(client: Client, app: web.Application, unit_id: int) -> EnrolResponse:
    code = await new_code(app, unit_id)
    request = EnrolRequest(code=code, hostname="agent-hoasen", version="0.1.0")
    response = await client.post(
        ENROL_PATH, data=request.model_dump_json(), headers={"Content-Type": "application/json"}
    )
    assert response.status == 200, await response.text()
    return EnrolResponse.model_validate_json(await response.read())


def camera(
    n: int,
    state_: CameraState = CameraState.READY,
    reason: str = "profiles and stream URIs read",
    address: str | None = None,
) -> CameraReport:
    at = T0 + timedelta(seconds=n)
    return CameraReport(
        endpoint_ref=f"urn:uuid:00000000-0000-0000-0000-{n:012d}",
        address=address or f"198.18.1.{10 + n}",
        xaddrs=[f"http://198.18.1.{10 + n}/onvif/device_service"],
        name=f"Lớp Chồi {n}",
        state=state_,
        reason=reason,
        device=DeviceInfo(manufacturer="Ketnoi Sim", model="SIM-1080", firmware="1.0", serial=f"SN{n}"),
        profiles=[
            StreamProfile(
                token="main",
                name="main",
                role="main",
                encoding="H264",
                width=1280,
                height=720,
                stream_uri=f"rtsp://198.18.1.{10 + n}:554/main",
            ),
            StreamProfile(
                token="sub",
                name="sub",
                role="sub",
                encoding="H264",
                width=640,
                height=360,
                stream_uri=f"rtsp://198.18.1.{10 + n}:554/sub",
            ),
        ],
        snapshot_uri=f"http://198.18.1.{10 + n}/snapshot.jpg",
        first_seen=at,
        last_seen=at,
        changed_at=at,
    )


def hello(cameras: list[CameraReport], seq: int = 0, version: int = PROTOCOL_VERSION) -> Hello:
    return Hello(
        version=version, agent_version="0.1.0", hostname="agent-hoasen", started_at=T0, seq=seq, cameras=cameras
    )


async def connect(client: Client, token: str) -> ClientWebSocketResponse:
    return await client.ws_connect(UPLINK_PATH, headers={"Authorization": f"Bearer {token}"})


async def send(ws: ClientWebSocketResponse, message: Message) -> None:
    await ws.send_str(message.model_dump_json())


async def receive(ws: ClientWebSocketResponse, timeout: float = 10.0) -> ControllerMessage | None:  # noqa: ASYNC109
    """The next controller message, or None once the link closed."""
    frame = await ws.receive(timeout=timeout)
    if frame.type is not WSMsgType.TEXT:
        return None
    return CONTROLLER_MESSAGE.validate_json(frame.data)


async def until(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Poll an async condition until it holds; TimeoutError after `timeout_s` (never a fixed sleep)."""
    await eventually_true(predicate, timeout=timeout_s, interval=0.01)
