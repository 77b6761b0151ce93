"""Prometheus reaches agents through the controller: service discovery and /metrics over the uplink.

A real agent uplink client (agents/uplink.py) with the agent's real metrics registry talks to the real
controller; an agent that never answers is a raw WebSocket speaking the protocol (tests/controller/uplink_helpers).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from agents.metrics import AgentMetrics
from agents.recording.stats import RecorderState
from agents.uplink import Uplink, cut_exposition, metrics_frame
from common.clock import ManualClock
from controller import state
from controller.app import build_app
from controller.db.models import User
from controller.people import tokens
from controller.security.passwords import Passwords, cheap_hasher
from controller.uplink.metrics_proxy import METRICS_PROXY, SD_PATH
from protocol.uplink import MAX_FRAME_BYTES, METRICS_BODY_LIMIT, MetricsRequest, MetricsResponse, Welcome
from tests.controller.conftest import AiohttpClient, Client, World, make_config, seed, sign_in
from tests.controller.uplink_helpers import camera, connect, enrol, hello, receive, send, until

CAMERA = "00000000-0000-0000-0000-000000000001"


class Figures:
    """One camera's recorder figures, as agents.recording.stats.RecorderStats gives them."""

    state = RecorderState.RECORDING.value
    frames_total = 250.0
    bytes_total = 1e6
    keyframes_total = 5.0
    last_packet_monotonic = None
    fps = 25.0
    bitrate_bps = 2e6
    keyframe_interval_s = 2.0
    reconnects_total = 1.0
    stalls_total = 0.0
    gaps_total = 0.0
    gap_seconds_total = 0.0
    segments_total = 3.0
    write_errors_total = 0.0
    recording_lag_s = 0.5


async def api_token(app: web.Application, username: str) -> str:
    async with app[state.DB].begin() as session:
        user = (await session.execute(select(User).where(User.username == username))).scalar_one()
        made = await tokens.create(session, user.id, name="prometheus", days=30, now=app[state.CLOCK].now())
    return made.secret


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def running(uplink: Uplink, app: web.Application, agent_id: str) -> AsyncIterator[None]:
    """The uplink runs, and the controller may send requests over it (its Welcome has gone out)."""
    task = asyncio.create_task(uplink.run())
    try:
        await asyncio.wait_for(uplink.online.wait(), 10)

        async def welcomed() -> bool:
            return app[METRICS_PROXY].reachable(int(agent_id)) is not None

        await until(welcomed)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def agent_uplink(client: Client, token: str, exposition: Callable[[], Awaitable[bytes]] | None = None) -> Uplink:
    """The agent's uplink client, answering with the agent's real registry (one camera recording) by default."""
    metrics = AgentMetrics(recorder=lambda: {CAMERA: Figures()}, version="0.1.0")
    return Uplink(
        str(client.make_url("")).rstrip("/"),
        token,
        hostname="agent-hoasen",
        version="0.1.0",
        snapshot=lambda: [camera(1)],
        on_approve=lambda ref: asyncio.sleep(0),
        metrics=exposition or metrics.exposition,
    )


async def test_prometheus_lists_online_agents_and_scrapes_them_through_the_uplink(
    client: Client, app: web.Application, world: World
) -> None:
    token = await api_token(app, world.admin)
    online = await enrol(client, app, world.school)
    offline = await enrol(client, app, world.other_school)  # enrolled, never connected
    uplink = agent_uplink(client, online.token)
    async with running(uplink, app, online.agent_id):
        listed = await client.get(SD_PATH, headers=_bearer(token))
        assert listed.status == 200
        groups = await listed.json()
        host = client.make_url("").host
        assert groups == [
            {
                "targets": [f"{host}:{client.port}"],
                "labels": {"agent": online.agent_id, "site": "Mầm non <b>Hoa Sen</b>", "site_id": online.site_id},
            }
        ]
        text = await listed.text()
        assert online.token not in text and token not in text

        answer = await client.get(f"/api/agents/{online.agent_id}/metrics", headers=_bearer(token))
        assert answer.status == 200, await answer.text()
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "X-Ketnoi-Truncated" not in answer.headers
        families = {family.name: family for family in text_string_to_metric_families(await answer.text())}
        up = families["ketnoi_agent_camera_up"]
        assert [(s.labels, s.value) for s in up.samples] == [({"camera": CAMERA}, 1.0)]
        assert families["ketnoi_agent_camera_frames"].samples[0].value == 250.0
        assert families["ketnoi_agent_build_info"].samples[0].labels == {"version": "0.1.0"}

        unreachable = await client.get(f"/api/agents/{offline.agent_id}/metrics", headers=_bearer(token))
        assert unreachable.status == 503 and "offline" in (await unreachable.json())["error"]
    assert app[METRICS_PROXY].waiting == 0

    async def gone() -> bool:
        listed: object = await (await client.get(SD_PATH, headers=_bearer(token))).json()
        return listed == []

    await until(gone)
    after = await client.get(f"/api/agents/{online.agent_id}/metrics", headers=_bearer(token))
    assert after.status == 503 and "offline" in (await after.json())["error"]


async def _impatient(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock
) -> tuple[web.Application, Client, World]:
    """A controller that waits 0.3 s for an agent's metrics."""
    app = build_app(
        make_config(tmp_path, agent_metrics_timeout_s=0.3), clock=clock, passwords=Passwords(cheap_hasher()),
        secret_key=b"p" * 32,
    )  # fmt: skip
    client = await aiohttp_client(app)
    return app, client, await seed(app)


async def test_an_agent_that_does_not_answer_is_503_after_the_timeout(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock
) -> None:
    app, client, world = await _impatient(aiohttp_client, tmp_path, clock)
    token = await api_token(app, world.admin)
    silent = await enrol(client, app, world.school)
    ws = await connect(client, silent.token)
    await send(ws, hello([camera(1)]))
    assert isinstance(await receive(ws), Welcome)

    scrape = asyncio.create_task(client.get(f"/api/agents/{silent.agent_id}/metrics", headers=_bearer(token)))
    request = await receive(ws)
    assert isinstance(request, MetricsRequest)
    answer = await scrape
    assert answer.status == 503 and "did not answer within 0.3 s" in (await answer.json())["error"]
    assert app[METRICS_PROXY].waiting == 0

    # A late answer is dropped, and the link stays up: the next request is answered (by this fake, in time).
    await send(ws, MetricsResponse(request_id=request.request_id, body="late 1\n"))
    scrape = asyncio.create_task(client.get(f"/api/agents/{silent.agent_id}/metrics", headers=_bearer(token)))
    second = await receive(ws)
    assert isinstance(second, MetricsRequest) and second.request_id != request.request_id
    await send(ws, MetricsResponse(request_id=second.request_id, body="# cut\n", truncated=True))
    answer = await scrape
    assert answer.status == 200 and await answer.text() == "# cut\n"
    assert answer.headers["X-Ketnoi-Truncated"] == "1"
    await ws.close()


async def test_an_agent_whose_metrics_fail_is_503_and_stays_connected(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    app, client, world = await _impatient(aiohttp_client, tmp_path, clock)
    token = await api_token(app, world.admin)
    agent = await enrol(client, app, world.school)
    failures = 0

    async def broken() -> bytes:
        nonlocal failures
        failures += 1
        raise OSError("the index is unreadable")

    uplink = agent_uplink(client, agent.token, broken)  # the agent's registry failing at render time
    async with running(uplink, app, agent.agent_id):
        answer = await client.get(f"/api/agents/{agent.agent_id}/metrics", headers=_bearer(token))
        assert answer.status == 503 and "did not answer" in (await answer.json())["error"]
        assert failures == 1 and "could not render the metrics" in caplog.text
        assert uplink.online.is_set() and uplink.connections == 1


async def test_no_request_goes_over_a_link_before_its_welcome(
    client: Client, app: web.Application, world: World
) -> None:
    token = await api_token(app, world.admin)
    agent = await enrol(client, app, world.school)
    ws = await connect(client, agent.token)  # connected, no hello yet: a request now would break the handshake
    early = await client.get(f"/api/agents/{agent.agent_id}/metrics", headers=_bearer(token))
    assert early.status == 503 and "offline" in (await early.json())["error"]
    assert await (await client.get(SD_PATH, headers=_bearer(token))).json() == []
    await send(ws, hello([]))
    assert isinstance(await receive(ws), Welcome)
    listed = await (await client.get(SD_PATH, headers=_bearer(token))).json()
    assert [group["labels"]["agent"] for group in listed] == [agent.agent_id]
    await ws.close()


async def test_a_link_that_closes_before_the_answer_fails_the_scrape_at_once(
    client: Client, app: web.Application, world: World
) -> None:
    token = await api_token(app, world.admin)
    agent = await enrol(client, app, world.school)
    ws = await connect(client, agent.token)
    await send(ws, hello([]))
    assert isinstance(await receive(ws), Welcome)
    scrape = asyncio.create_task(client.get(f"/api/agents/{agent.agent_id}/metrics", headers=_bearer(token)))
    assert isinstance(await receive(ws), MetricsRequest)
    await ws.close()
    answer = await asyncio.wait_for(scrape, 5)  # well before agent_metrics_timeout_s (8 s)
    assert answer.status == 503 and "link closed" in (await answer.json())["error"]
    assert app[METRICS_PROXY].waiting == 0


async def test_an_agent_cannot_answer_for_another(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock
) -> None:
    app, client, world = await _impatient(aiohttp_client, tmp_path, clock)
    token = await api_token(app, world.admin)
    asked, other = await enrol(client, app, world.school), await enrol(client, app, world.school)
    links = [await connect(client, agent.token) for agent in (asked, other)]
    for ws in links:
        await send(ws, hello([]))
        assert isinstance(await receive(ws), Welcome)
    scrape = asyncio.create_task(client.get(f"/api/agents/{asked.agent_id}/metrics", headers=_bearer(token)))
    request = await receive(links[0])
    assert isinstance(request, MetricsRequest)
    await send(links[1], MetricsResponse(request_id=request.request_id, body="forged 1\n"))
    assert (await scrape).status == 503
    for ws in links:
        await ws.close()


async def test_who_may_scrape(client: Client, app: web.Application, world: World) -> None:
    agent = await enrol(client, app, world.school)
    path = f"/api/agents/{agent.agent_id}/metrics"
    for route in (path, SD_PATH):
        assert (await client.get(route)).status == 401
        assert (await client.get(route, headers=_bearer("kt_not-a-token"))).status == 401
        technician = await api_token(app, world.technician)  # the agent's own district, but not an administrator
        refused = await client.get(route, headers=_bearer(technician))
        assert refused.status == 403 and "error" in await refused.json()
    admin = await api_token(app, world.admin)
    assert (await client.get("/api/agents/999999/metrics", headers=_bearer(admin))).status == 404
    await sign_in(client, world.admin)  # an administrator's session works too (a look from the browser)
    assert (await client.get(path)).status == 503


@pytest.mark.parametrize(
    ("body", "limit", "expected"),
    [
        (b"a 1\nb 2\n", 100, ("a 1\nb 2\n", False)),
        (b"a 1\nb 2\n", 8, ("a 1\nb 2\n", False)),
        (b"a 1\nb 2\n", 7, ("a 1\n", True)),
        (b"a 1\nb 2\n", 3, ("", True)),
    ],
)
def test_an_exposition_too_large_for_a_frame_is_cut_at_a_line_end(
    body: bytes, limit: int, expected: tuple[str, bool]
) -> None:
    assert cut_exposition(body, limit) == expected


def test_a_metrics_frame_always_fits_even_when_escaping_grows_it() -> None:
    plain = b"a 1\n" * 100
    frame, truncated = metrics_frame("r1", plain)
    assert MetricsResponse.model_validate_json(frame) == MetricsResponse(request_id="r1", body=plain.decode())
    assert not truncated
    big = b"b 2\n" * (METRICS_BODY_LIMIT // 4 + 10)  # over the body limit: cut at a line end
    frame, truncated = metrics_frame("r2", big)
    body = MetricsResponse.model_validate_json(frame).body
    assert truncated and body.endswith("b 2\n") and len(body) <= METRICS_BODY_LIMIT
    controls = (b'c{x="' + b"\x01" * 1000 + b'"} 1\n') * 2000  # each \x01 becomes \u0001 in JSON: 6 bytes
    frame, truncated = metrics_frame("r3", controls)
    assert truncated and len(frame.encode()) <= MAX_FRAME_BYTES
    assert MetricsResponse.model_validate_json(frame).body.endswith('"} 1\n')
