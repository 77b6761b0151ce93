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
from agents.recording.index import DB_FILE, Segment, SegmentIndex
from agents.recording.supervisor import LoginFor, RecordingSupervisor
from protocol.camera import CameraReport, CameraState, StreamProfile
from simulator.camera import SimulatedCamera
from tests.agents.cameras import PASSWORD
from tests.waiting import eventually_true

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
    state_dir: Path, config: RecordingConfig | None = None, *, login: LoginFor = login_for, **hooks: Any
) -> AsyncIterator[RecordingSupervisor]:
    """A running supervisor over `state_dir` (index and recordings); stopped and closed on the way out."""
    config = config or recording_config()
    index = await SegmentIndex.open(state_dir / DB_FILE)
    supervisor = RecordingSupervisor(config, config.root_for(state_dir), index, login, **hooks)
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


async def complete_segments(index: SegmentIndex, camera: str) -> list[Segment]:
    return [s for s in await index.all_segments(camera) if s.complete]


async def wait_segments(supervisor: RecordingSupervisor, camera: str, count: int, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    async def enough() -> bool:
        return len(await complete_segments(supervisor.index, camera)) >= count

    await eventually_true(enough, timeout=timeout, interval=0.1)


def check_segment(root: Path, segment: Segment) -> float:
    """A segment's file starts on a keyframe, decodes, agrees with its row; its duration per ffprobe."""
    path = root / segment.path
    probed = ffprobe(path)
    packets = probed["packets"]
    assert packets, segment
    assert packets[0]["flags"].startswith("K"), segment
    assert decodes(path) == len(packets), segment
    assert segment.bytes == path.stat().st_size, segment
    duration = float(probed["format"]["duration"])
    assert abs(duration - segment.duration_s) < 0.05, (duration, segment)
    return duration
