"""What a technician sees: the agent online with its cameras, offline after it goes; no secret anywhere."""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

from aiohttp import ClientWebSocketResponse, web
from sqlalchemy import select, update

from controller import state
from controller.db.models import Agent, Camera, User
from protocol.camera import CameraReport, CameraState
from protocol.uplink import Welcome
from tests.controller.conftest import ORIGIN, PASSWORD, Client, World, cookie_value, sign_in
from tests.controller.uplink_helpers import camera, connect, enrol, hello, receive, send, until

CAMERA_PASSWORD = "Cam#Pass w0rd/1"


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets for form in {s, quote(s, safe=""), quote_plus(s)} if form and form in text]


async def test_technician_sees_the_agent_and_its_cameras_then_offline(
    client: Client, app: web.Application, world: World
) -> None:
    enrolled = await enrol(client, app, world.school)
    ws = await connect(client, enrolled.token)
    outsider = camera(3, CameraState.PENDING_APPROVAL, "outside the site's camera networks", address="10.1.1.1")
    refused = camera(2, CameraState.AUTH_FAILED, "the camera refused the site's credentials")
    await send_hello(ws, [camera(1), refused, outsider])
    await sign_in(client, world.technician)

    agents = await (await client.get(f"/api/units/{world.school}/agents")).json()
    assert [(a["id"], a["online"], a["version"]) for a in agents["agents"]] == [(int(enrolled.agent_id), True, "0.1.0")]
    agent = await (await client.get(f"/api/agents/{enrolled.agent_id}")).json()
    assert agent["hostname"] == "agent-hoasen" and agent["last_seen"].endswith("+00:00")
    cameras = (await (await client.get(f"/api/agents/{enrolled.agent_id}/cameras")).json())["cameras"]
    by_ref = {c["endpoint_ref"]: c for c in cameras}
    first = by_ref[camera(1).endpoint_ref]
    assert first["state"] == "ready" and first["model"] == "SIM-1080"
    assert first["main_resolution"] == "1280x720" and first["sub_resolution"] == "640x360"
    assert by_ref[camera(2).endpoint_ref]["reason"] == "the camera refused the site's credentials"

    page = await (await client.get(f"/units/{world.school}")).text()
    assert "Trực tuyến" in page and "Lớp Chồi 1" in page and "1280x720" in page and "Chờ phê duyệt" in page
    assert "Mầm non &lt;b&gt;Hoa Sen&lt;/b&gt;" in page and "<b>Hoa Sen</b>" not in page  # escaped
    assert "2026-01-05 08:00:00" in page  # 01:00 UTC shown in Asia/Ho_Chi_Minh (UTC+7)
    overview = await (await client.get("/?lang=en")).text()
    assert "Online" in overview and "Ready: 1" in overview and "Pending approval: 1" in overview
    assert "Online" in await (await client.get("/")).text()  # the language choice is remembered

    # Approve from the page's form.
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    outsider_id = by_ref[outsider.endpoint_ref]["id"]
    response = await client.post(
        f"/cameras/{outsider_id}/approve", data={"csrf_token": token.group(1)}, headers=ORIGIN, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == f"/units/{world.school}"
    assert "Đã duyệt" in await (await client.get(f"/units/{world.school}?lang=vi")).text()

    await ws.close()
    agent_id = int(enrolled.agent_id)

    async def offline() -> bool:
        data = await (await client.get(f"/api/agents/{agent_id}")).json()
        return data["online"] is False

    await until(offline)
    page = await (await client.get(f"/units/{world.school}")).text()
    assert "Mất kết nối" in page


async def send_hello(ws: ClientWebSocketResponse, cameras: list[CameraReport]) -> None:
    await send(ws, hello(cameras))
    assert isinstance(await receive(ws), Welcome)


async def test_no_page_or_api_output_contains_a_secret(client: Client, app: web.Application, world: World) -> None:
    enrolled = await enrol(client, app, world.school)
    ws = await connect(client, enrolled.token)
    await send_hello(ws, [camera(1)])
    # A row that somehow holds credentials (the protocol refuses them) is still shown without them.
    async with app[state.DB].begin() as session:
        row = (await session.execute(select(Camera))).scalar_one()
        leaky = f"rtsp://admin:{quote(CAMERA_PASSWORD, safe='')}@198.18.1.11:554/main"
        row.profiles = [{**row.profiles[0], "stream_uri": leaky}]
        row.snapshot_uri = f"http://admin:{quote(CAMERA_PASSWORD, safe='')}@198.18.1.11/snap.jpg"
        password_hash = (await session.execute(select(User.password_hash).limit(1))).scalar_one()
        token_hash = (await session.execute(select(Agent.token_hash))).scalar_one()
    token = await sign_in(client, world.admin)
    code_page = await client.post(f"/units/{world.school}/enrolment-codes", data={"csrf_token": token}, headers=ORIGIN)
    code = re.search(r'class="bigcode">([A-Z0-9-]+)<', await code_page.text())
    assert code  # shown once, on the page that made it
    session_cookie = cookie_value(client)
    assert session_cookie
    secrets = [CAMERA_PASSWORD, enrolled.token, token_hash, password_hash, PASSWORD, session_cookie, code.group(1)]
    paths = [
        "/",
        f"/units/{world.school}",
        "/api/units",
        f"/api/units/{world.school}",
        f"/api/units/{world.school}/agents",
        f"/api/agents/{enrolled.agent_id}",
        f"/api/agents/{enrolled.agent_id}/cameras",
        "/metrics",
        "/healthz",
        "/signin",
    ]
    for path in paths:
        body = await (await client.get(path)).text()
        assert _leaks(body, secrets) == [], path
    cameras = (await (await client.get(f"/api/agents/{enrolled.agent_id}/cameras")).json())["cameras"]
    assert cameras[0]["profiles"][0]["stream_uri"] == "rtsp://198.18.1.11:554/main"
    assert cameras[0]["snapshot_uri"] == "http://198.18.1.11/snap.jpg"
    await ws.close()


async def test_pages_carry_security_headers(client: Client, world: World) -> None:
    response = await client.get("/signin")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert (await client.get("/static/style.css")).status == 200
    assert (await client.get("/static/../config.py")).status in (403, 404)


async def test_locked_out_user_sees_the_same_page(client: Client, app: web.Application, world: World) -> None:
    async with app[state.DB].begin() as session:
        await session.execute(update(User).where(User.username == world.admin).values(disabled=True))
    response = await client.post(
        "/signin", data={"username": world.admin, "password": PASSWORD}, headers=ORIGIN, allow_redirects=False
    )
    assert response.status == 401
