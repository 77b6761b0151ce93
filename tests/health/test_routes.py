"""GET /api/cameras/{camera}/snapshot: bearer token, the latest sampled keyframe as a JPEG, by camera id only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from aiohttp import web
from pytest_aiohttp.plugin import AiohttpClient

from agents.health.config import HealthConfig
from agents.health.monitor import ImageHealth
from agents.health.routes import SnapshotRoutes
from agents.recording.hooks import Keyframe
from tests.waiting import eventually

TOKEN = "a-test-token-of-enough-length"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAMERA = "5d6a2c1e-0f43-5b8e-9c55-3e0f3e7b9a10"


@pytest.fixture
def health(tmp_path: Path) -> Iterator[ImageHealth]:
    monitor = ImageHealth(HealthConfig(), tmp_path / "snapshots")
    yield monitor
    monitor.close()


async def test_snapshot_route(aiohttp_client: AiohttpClient, health: ImageHealth, simulator_mp4: Path) -> None:
    app = web.Application()
    SnapshotRoutes(health, TOKEN).add_routes(app)
    client = await aiohttp_client(app)
    url = f"/api/cameras/{CAMERA}/snapshot"
    assert (await client.get(url)).status == 401
    assert (await client.get(url, headers=AUTH)).status == 404  # nothing sampled yet

    with av.open(str(simulator_mp4)) as container:
        stream = container.streams.video[0]
        packet = next(p for p in container.demux(stream) if p.is_keyframe)
        health.on_keyframe(CAMERA, Keyframe("h264", bytes(stream.codec_context.extradata or b""), bytes(packet)))
        await eventually(lambda: CAMERA in health.figures() and health.figures()[CAMERA].samples_total == 1)

    response = await client.get(url, headers=AUTH)
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    assert (await response.read())[:2] == b"\xff\xd8"
    assert (await client.get("/api/cameras/..%2F..%2Fetc/snapshot", headers=AUTH)).status in (400, 404)
    assert (await client.get("/api/cameras/.hidden/snapshot", headers=AUTH)).status == 400
