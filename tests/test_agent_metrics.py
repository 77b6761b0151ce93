"""The agent's /metrics: valid exposition (promtool), the figures of recorder, retention and image health read
at scrape time, labels from fixed sets only (no URL, no secret), and random paths create no series."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from pytest_aiohttp.plugin import AiohttpClient

from agents.discovery.credentials import CredentialBook
from agents.health.monitor import ImageFigures
from agents.inventory import Inventory
from agents.metrics import RECORDER_STATES, AgentMetrics, camera_label
from agents.recording.stats import RecorderStats
from agents.service import Agent
from agents.storage.config import RetentionConfig
from agents.storage.retention import Retention
from common.clock import ManualClock
from tests.agents.cameras import PASSWORD, running, spec
from tests.agents.cameras import config as agent_config
from tests.storage.fakes import FakeVolume, MemoryIndex
from tests.waiting import eventually_true

CAMERA_REF = "urn:uuid:5D6A2C1E-0F43-5B8E-9C55-3E0F3E7B9A10"
CAMERA = "5d6a2c1e-0f43-5b8e-9c55-3e0f3e7b9a10"
SECRET_URL = "rtsp://admin:p%40ss@127.0.1.5:8554/main"


@dataclass
class Stats:
    """Stands in for agents.recording.stats.RecorderStats."""

    camera: str
    state: str = "recording"
    frames_total: int = 1500
    bytes_total: int = 15_000_000
    keyframes_total: int = 30
    last_packet_monotonic: float | None = 990.0
    fps: float = 25.0
    bitrate_bps: float = 2_000_000.0
    keyframe_interval_s: float | None = 2.0
    reconnects_total: int = 1
    stalls_total: int = 2
    gaps_total: int = 1
    gap_seconds_total: float = 3.5
    segments_total: int = 1
    write_errors_total: int = 0
    recording_lag_s: float | None = 0.4
    extra: dict[str, str] = field(default_factory=dict)


def promtool_check_metrics(text: str) -> str:
    """promtool's complaints about an exposition ('' when it has none)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing"
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    return "" if checked.returncode == 0 else checked.stdout + checked.stderr


def series(text: str) -> set[str]:
    return {line.split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not found"
    return float(match.group(1))


async def make_app(tmp_path: Path, clock: ManualClock) -> tuple[web.Application, MemoryIndex]:
    index = MemoryIndex()
    index.add(tmp_path, CAMERA, clock.now() - timedelta(hours=3), 1000)
    retention = Retention(
        RetentionConfig(floor_bytes=5000, floor_percent=0, headroom_bytes=0),
        tmp_path,
        index,
        clock=clock,
        usage=FakeVolume(tmp_path, 10_000, other=6000),
    )
    await retention.on_write_error(CAMERA_REF, OSError(5, "Input/output error"))
    stats = {
        CAMERA_REF: Stats(CAMERA_REF),
        "urn:uuid:0b6c9a4e-2222-4a6b-9a51-000000000002": Stats("b", state="stalled", last_packet_monotonic=None),
        SECRET_URL: Stats(SECRET_URL, state="reconnecting"),  # a key that is not an id never becomes a label
    }
    health = {
        CAMERA_REF: ImageFigures(
            brightness=0.5,
            contrast=0.2,
            sharpness=450.0,
            change=0.0,
            frozen=True,
            samples_total=4,
            sampled_at=clock.now() - timedelta(seconds=3),
        )
    }
    metrics = AgentMetrics(
        recorder=lambda: stats, retention=retention, health=lambda: health, clock=clock, version="0.1.0"
    )
    app = web.Application()
    app.router.add_get("/metrics", metrics.handle)
    return app, index


async def test_metrics_scrape_is_valid_and_complete(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    clock = ManualClock()
    app, _ = await make_app(tmp_path, clock)
    client = await aiohttp_client(app)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()

    lint = promtool_check_metrics(text)
    assert lint == "", lint

    label = f'camera="{CAMERA}"'
    camera = {  # ketnoi_agent_camera_<name>{camera="..."}: the recorder's and image health's figures
        "up": 1,
        "frames_total": 1500,
        "received_bytes_total": 15_000_000,
        "frames_per_second": 25,
        "receive_rate_bytes_per_second": 250_000,
        "keyframe_interval_seconds": 2,
        "last_packet_age_seconds": 10,  # clock at 1000
        "gap_seconds_total": 3.5,
        "stalls_total": 2,
        "segments_written_total": 1,
        "recording_lag_seconds": 0.4,
        "image_frozen": 1,
        "image_dark": 0,
        "image_sharpness": 450,
        "image_sample_age_seconds": 3,
    }
    assert {name: value(text, f"ketnoi_agent_camera_{name}{{{label}}}") for name in camera} == camera
    assert value(text, f'ketnoi_agent_camera_state{{{label},state="recording"}}') == 1
    assert value(text, f'ketnoi_agent_camera_state{{{label},state="stalled"}}') == 0
    assert value(text, 'ketnoi_agent_camera_up{camera="0b6c9a4e-2222-4a6b-9a51-000000000002"}') == 0
    # Storage, read at scrape time: 10000 bytes, 6000 used by other files, 1000 by the one recording.
    agent = {
        "ketnoi_agent_recordings_volume_free_bytes": 3000,
        "ketnoi_agent_recordings_volume_floor_bytes": 5000,
        "ketnoi_agent_recordings_floor_breached": 1,
        "ketnoi_agent_recordings_bytes": 1000,
        "ketnoi_agent_recordings_oldest_age_seconds": 3 * 3600,
        'ketnoi_agent_recordings_write_errors_total{kind="io"}': 1,
        'ketnoi_agent_recordings_deleted_segments_total{reason="floor"}': 0,
        'ketnoi_agent_build_info{version="0.1.0"}': 1,
    }
    assert {name: value(text, name) for name in agent} == agent

    # Labels come from fixed sets: camera ids, states, reasons, kinds; never a URL or a password.
    assert "rtsp" not in text and "p%40ss" not in text and "127.0.1.5" not in text
    cameras = set(re.findall(r'camera="([^"]*)"', text))
    assert all(re.fullmatch(r"([0-9a-f-]{36}|id-[0-9a-f]{16})(\.sub)?", c) for c in cameras), cameras
    assert set(re.findall(r'state="([^"]*)"', text)) == set(RECORDER_STATES)


async def test_random_paths_create_no_series(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    clock = ManualClock()
    app, _ = await make_app(tmp_path, clock)
    client = await aiohttp_client(app)
    before = series(await (await client.get("/metrics")).text())
    for path in ("/random", "/metrics/../etc/passwd", "/%2e%2e/x", "/api/cameras/rtsp:%2F%2Fx", "/metrics?camera=x"):
        await client.get(path)
        await client.post(path, data=b"x")
    after = series(await (await client.get("/metrics")).text())
    assert after == before


def test_camera_label_is_the_uuid_or_a_hash() -> None:
    assert camera_label(CAMERA_REF) == CAMERA
    assert camera_label(CAMERA) == CAMERA
    assert camera_label(f"{CAMERA}.sub") == f"{CAMERA}.sub"
    assert camera_label("id-0123456789abcdef") == "id-0123456789abcdef"
    hashed = camera_label(SECRET_URL)
    assert re.fullmatch(r"id-[0-9a-f]{16}", hashed) and hashed == camera_label(SECRET_URL)


def sample_metric_names() -> set[str]:
    """Every series name the agent exports, from a scrape where every figure has a value (for test_deployment)."""
    clock = ManualClock()
    retention = Retention(RetentionConfig(), Path("."), MemoryIndex(), clock=clock)
    retention.stats.oldest_start = clock.now()
    recorder_stats = RecorderStats(
        CAMERA_REF, last_packet_monotonic=0.0, fps=25, bitrate_bps=2e6, keyframe_interval_s=2, written_end_wall=0.0
    )
    figures = ImageFigures(brightness=0.5, contrast=0.2, sharpness=400.0, change=0.2, samples_total=1)
    metrics = AgentMetrics(
        recorder=lambda: {CAMERA_REF: recorder_stats},
        retention=retention,
        health=lambda: {CAMERA_REF: replace(figures, sampled_at=clock.now())},
        clock=clock,
        version="0",
    )
    return {sample.name for family in metrics.registry.collect() for sample in family.samples}


def test_sample_names_cover_every_family() -> None:
    names = sample_metric_names()
    families = {family.name for family in AgentMetrics().registry.collect()}
    assert all(any(name.startswith(family) for name in names) for family in families)
    assert "ketnoi_agent_recordings_oldest_age_seconds" in names
    assert "ketnoi_agent_camera_image_frozen" in names


async def test_the_running_agent_serves_metrics_on_its_health_port(tmp_path: Path) -> None:
    cfg = agent_config(tmp_path, [], networks=["127.0.1.248/29"])
    async with await Inventory.open(tmp_path) as inventory:
        agent = Agent(cfg, CredentialBook.from_config(cfg), inventory)
        task = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.started.wait(), 10)
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{agent.health_port}/metrics") as r:
                text = await r.text()
            assert r.status == 200
            assert 'ketnoi_agent_build_info{version="' in text
            assert promtool_check_metrics(text) == ""
        finally:
            agent.stop()
            await asyncio.wait_for(task, 10)


async def test_a_recording_agent_exports_its_cameras_volume_and_image_health(tmp_path: Path) -> None:
    # Image health samples every keyframe (2 s): the simulator's loop alternates between its two keyframes.
    cfg = agent_config(tmp_path, ["127.0.1.250"], networks=["127.0.1.248/29"], health={"interval_s": 2})
    async with running([spec("metrics-cam", "127.0.1.250")]) as (camera,), await Inventory.open(tmp_path) as inventory:
        agent = Agent(cfg, CredentialBook.from_config(cfg), inventory)
        task = asyncio.create_task(agent.run())
        label = f'camera="{camera_label(camera.spec.endpoint_ref)}"'
        try:
            await asyncio.wait_for(agent.started.wait(), 10)
            base = f"http://127.0.0.1:{agent.health_port}"
            async with aiohttp.ClientSession() as http:

                async def scrape() -> str:
                    async with http.get(f"{base}/metrics") as r:
                        return await r.text()

                async def sampled() -> bool:
                    text = await scrape()
                    samples = re.search(rf"ketnoi_agent_camera_image_samples_total{{{label}}} (\S+)", text)
                    up = f"ketnoi_agent_camera_up{{{label}}} 1.0" in text
                    return up and samples is not None and float(samples.group(1)) >= 4

                await eventually_true(sampled, timeout=30)
                text = await scrape()
                assert promtool_check_metrics(text) == ""
                # The simulator's live picture, sampled four times, is judged healthy: not dark, sharp, moving.
                for problem in ("dark", "blurred", "frozen"):
                    assert value(text, f"ketnoi_agent_camera_image_{problem}{{{label}}}") == 0, problem
                assert value(text, f"ketnoi_agent_camera_image_change_ratio{{{label}}}") > 0.05
                assert value(text, "ketnoi_agent_recordings_volume_free_bytes") > 0
                assert PASSWORD not in text and "rtsp" not in text

                token = (tmp_path / "api-token").read_text().strip()
                auth = {"Authorization": f"Bearer {token}"}
                camera_id = camera_label(camera.spec.endpoint_ref)
                async with http.get(f"{base}/api/cameras/{camera_id}/snapshot") as r:
                    assert r.status == 401
                async with http.get(f"{base}/api/cameras/{camera_id}/snapshot", headers=auth) as r:
                    assert r.status == 200 and (await r.read())[:2] == b"\xff\xd8"
                window = {"start": "2020-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z"}
                async with http.post(f"{base}/api/cameras/{camera_id}/holds", json=window, headers=auth) as r:
                    assert r.status == 400  # longer than a year
                now = datetime.now(UTC)
                window = {"start": f"{now - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}", "end": f"{now:%Y-%m-%dT%H:%M:%SZ}"}
                async with http.post(f"{base}/api/cameras/{camera_id}/holds", json=window, headers=auth) as r:
                    assert r.status == 200, await r.text()
        finally:
            agent.stop()
            await asyncio.wait_for(task, 30)


async def test_every_local_route_but_health_and_metrics_needs_the_token(tmp_path: Path) -> None:
    cfg = agent_config(tmp_path, [], networks=["127.0.1.248/29"])
    async with await Inventory.open(tmp_path) as inventory, aiohttp.ClientSession() as http:
        agent = Agent(cfg, CredentialBook.from_config(cfg), inventory)
        task = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.started.wait(), 10)
            assert agent.local_app is not None
            routes = {(r.method, r.resource.canonical) for r in agent.local_app.router.routes() if r.resource}
            assert ("POST", "/api/cameras/{camera}/holds") in routes
            assert ("GET", "/api/cameras/{camera}/snapshot") in routes
            open_paths = {"/healthz", "/metrics"}
            base = f"http://127.0.0.1:{agent.health_port}"
            for method, canonical in sorted(routes):
                if method == "HEAD":
                    continue
                path = canonical.replace("{camera}", CAMERA).replace("{id}", "1")
                async with http.request(method, base + path, json={}) as r:
                    if canonical in open_paths:
                        assert r.status == 200, canonical
                    else:
                        assert r.status == 401, (method, canonical)
        finally:
            agent.stop()
            await asyncio.wait_for(task, 10)
