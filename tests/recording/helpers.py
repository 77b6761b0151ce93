"""Helpers for the recorder's tests: simulated cameras as ready inventory reports, a running supervisor, ffprobe."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.discovery.credentials import Login
from agents.recording.config import RecordingConfig
from agents.recording.index import DB_FILE, SegmentIndex
from agents.recording.supervisor import RecordingSupervisor
from protocol.camera import CameraReport, CameraState, StreamProfile
from simulator.camera import SimulatedCamera
from tests.agents.cameras import PASSWORD

FFPROBE = "/usr/bin/ffprobe"


def ready_report(camera: SimulatedCamera, *, state: CameraState = CameraState.READY) -> CameraReport:
    """What discovery would report for a simulated camera (its main and sub profiles)."""
    now = datetime.now(UTC)
    urls = camera.stream_urls
    return CameraReport(
        endpoint_ref=camera.spec.endpoint_ref,
        address=camera.spec.host,
        state=state,
        reason="test",
        profiles=[
            StreamProfile(
                token="main", name="Main", role="main", encoding="H264", width=1280, height=720, stream_uri=urls["main"]
            ),
            StreamProfile(
                token="sub", name="Sub", role="sub", encoding="H264", width=640, height=360, stream_uri=urls["sub"]
            ),
        ],
        first_seen=now,
        last_seen=now,
        changed_at=now,
    )


def login_for(endpoint_ref: str, address: str) -> Login:
    return Login("admin", PASSWORD)


def recording_config(**overrides: Any) -> RecordingConfig:
    data: dict[str, Any] = {
        "segment_s": 2.0,
        "fragment_s": 0.5,
        "stall_timeout_s": 2.0,
        "open_timeout_s": 5.0,
        "reconnect_base_s": 0.1,
        "reconnect_cap_s": 0.5,
    }
    data.update(overrides)
    return RecordingConfig.model_validate(data)


@contextlib.asynccontextmanager
async def supervising(
    state_dir: Path, config: RecordingConfig | None = None, **hooks: Any
) -> AsyncIterator[RecordingSupervisor]:
    """A running supervisor over `state_dir` (index and recordings); stopped and closed on the way out."""
    config = config or recording_config()
    index = await SegmentIndex.open(state_dir / DB_FILE)
    supervisor = RecordingSupervisor(config, config.root_for(state_dir), index, login_for, **hooks)
    task = asyncio.create_task(supervisor.run())
    try:
        await asyncio.wait_for(supervisor.started.wait(), 10)
        yield supervisor
    finally:
        supervisor.stop()
        await task
        await index.close()


def ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe's packets (flags, timestamps) and format of a file."""
    out = subprocess.run(
        [
            FFPROBE,
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,dts_time,duration_time,flags:format=duration,size:stream=codec_name",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def decodes(path: Path) -> int:
    """Decode every frame of `path` with PyAV; the number of frames (raises on a decoding error)."""
    import av

    frames = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            for _ in packet.decode():
                frames += 1
    return frames
