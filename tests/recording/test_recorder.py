"""Recording a simulated camera for real: segments on keyframes that decode, durations that add up, gaps."""

from __future__ import annotations

from pathlib import Path

from agents.recording.index import Segment
from tests.agents.cameras import running, spec
from tests.recording.helpers import decodes, ffprobe, ready_report, supervising
from tests.waiting import eventually_true


async def complete_segments(supervisor: object, camera: str, count: int) -> list[Segment]:
    from agents.recording.supervisor import RecordingSupervisor

    assert isinstance(supervisor, RecordingSupervisor)
    rows = [s for s in await supervisor.index.all_segments(camera) if s.complete]
    return rows if len(rows) >= count else []


async def test_records_segments_that_start_on_keyframes_and_decode(tmp_path: Path) -> None:
    async with running([spec("rec-a", "127.0.1.41")]) as cameras, supervising(tmp_path) as supervisor:
        report = ready_report(cameras[0])
        supervisor.update(report)
        camera = supervisor.cameras()[0]

        async def three() -> bool:
            return bool(await complete_segments(supervisor, camera, 3))

        await eventually_true(three, timeout=30)
        rows = await complete_segments(supervisor, camera, 3)
        stats = supervisor.stats()[camera]
    for row in rows:
        path = supervisor.root / row.path
        probed = ffprobe(path)
        packets = probed["packets"]
        assert packets[0]["flags"].startswith("K"), row
        assert decodes(path) == len(packets)
        assert row.bytes == path.stat().st_size
        assert abs(float(probed["format"]["duration"]) - row.duration_s) < 0.1
    print(rows, stats)
