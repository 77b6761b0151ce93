"""A recorder in a process of its own, for the kill -9 test: `python -m tests.recording.child STATE URL REF HOST`.

Records one camera (4 s segments, 0.5 s fragments) into STATE until killed; prints "started" once running.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from agents.recording.index import DB_FILE, SegmentIndex
from agents.recording.supervisor import RecordingSupervisor
from protocol.camera import CameraReport, CameraState, StreamProfile
from tests.recording.helpers import login_for, recording_config


async def main(state_dir: Path, url: str, endpoint_ref: str, host: str) -> None:
    config = recording_config(segment_s=4.0)
    now = datetime.now(UTC)
    profile = StreamProfile(
        token="main", name="Main", role="main", encoding="H264", width=1280, height=720, stream_uri=url
    )
    report = CameraReport(
        endpoint_ref=endpoint_ref,
        address=host,
        state=CameraState.READY,
        reason="test",
        profiles=[profile],
        first_seen=now,
        last_seen=now,
        changed_at=now,
    )
    index = await SegmentIndex.open(state_dir / DB_FILE)
    supervisor = RecordingSupervisor(config, config.root_for(state_dir), index, login_for)
    supervisor.sync([report])
    task = asyncio.create_task(supervisor.run())
    await supervisor.started.wait()
    print("started", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]))
