"""Segments recorded once per test session from a simulated camera, for tests that need real files to work on."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.recording.cameras import camera_id
from agents.recording.index import DB_FILE, Segment, SegmentIndex
from tests.agents.cameras import running, spec
from tests.recording.helpers import complete_segments, ready_report, supervising, wait_segments


@dataclass(frozen=True)
class Recorded:
    """A state directory holding an index and the recordings of one camera (copy it before changing it)."""

    state_dir: Path
    camera: str
    segments: list[Segment]

    def copy_to(self, target: Path) -> Path:
        shutil.copytree(self.state_dir, target)
        return target


async def _record(state_dir: Path) -> Recorded:
    async with running([spec("rec-fixture", "127.0.1.49")]) as cameras, supervising(state_dir) as supervisor:
        supervisor.update(ready_report(cameras[0]))
        camera = camera_id(cameras[0].spec.endpoint_ref)
        await wait_segments(supervisor, camera, 3)
    async with await SegmentIndex.open(state_dir / DB_FILE) as index:
        return Recorded(state_dir, camera, await complete_segments(index, camera))


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """About 7 s of one camera in 2 s segments (4 segments), recorded once."""
    state_dir = tmp_path_factory.mktemp("recorded")
    return asyncio.run(_record(state_dir))
