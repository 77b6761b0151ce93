"""Recording simulated cameras for real: segments on keyframes that decode, durations that add up, gaps for
stalls, drops and a camera that goes away, monotonic times whatever the camera's clock, secrets kept out."""

from __future__ import annotations

import itertools
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.discovery.credentials import Login
from agents.recording.cameras import camera_id
from agents.recording.index import DB_FILE, Segment, SegmentIndex
from agents.recording.supervisor import RecordingSupervisor
from common.clock import SystemClock
from common.redact import secret_forms
from simulator.camera import SimulatedCamera
from tests.agents.cameras import PASSWORD, running, spec
from tests.recording.helpers import (
    check_segment,
    complete_segments,
    ready_report,
    recording_config,
    supervising,
    wait_segments,
)
from tests.waiting import eventually

# Tolerances. Within one connection a segment starts where the previous one ended (both come from stream
# time), so index times and file durations agree to the millisecond; 50 ms allows for the last packet's
# duration. Against the test's own clock, the first segment starts when its first packet arrives and the last
# one ends at the last packet written before stop: up to one frame interval plus scheduling (0.5 s is ample).
FILE_VS_INDEX_S = 0.05
WALL_S = 0.5


def assert_monotonic(rows: list[Segment]) -> None:
    for before, after in itertools.pairwise(rows):
        assert before.start < before.end <= after.start, (before, after)


async def test_records_segments_that_start_on_keyframes_and_decode(tmp_path: Path) -> None:
    async with running([spec("rec-a", "127.0.1.41")]) as cameras, supervising(tmp_path) as supervisor:
        supervisor.update(ready_report(cameras[0]))
        camera = camera_id(cameras[0].spec.endpoint_ref)
        assert supervisor.cameras() == [camera]  # the sub-stream is not recorded unless configured
        await wait_segments(supervisor, camera, 3)
        stats = supervisor.stats()[camera]
    stopped_at = datetime.now(UTC)
    rows = await complete_segments_after_stop(supervisor, camera)
    assert len(rows) >= 4  # three while running, and the open one closed at stop
    durations = [check_segment(supervisor.root, row) for row in rows]
    assert_monotonic(rows)
    # Contiguous within one connection: the media durations add up to the time covered.
    covered = (rows[-1].end - rows[0].start).total_seconds()
    assert abs(sum(durations) - covered) < FILE_VS_INDEX_S * len(rows)
    assert rows[-1].end <= stopped_at + timedelta(seconds=WALL_S)
    for row in rows[:-1]:
        assert abs(row.duration_s - 2.0) < FILE_VS_INDEX_S  # 2 s segments of a 2 s GOP
    assert stats.state == "stopped"
    assert stats.keyframes_total >= 4 and stats.frames_total >= 25 * 6
    assert stats.fps is not None and 20 < stats.fps < 30
    assert stats.bitrate_bps is not None and 1e6 < stats.bitrate_bps < 4e6
    assert stats.keyframe_interval_s == pytest.approx(2.0, abs=0.05)
    assert stats.segments_total == len(rows) and stats.gaps_total == 0
    async with await SegmentIndex.open(tmp_path / DB_FILE) as index:
        assert await index.gaps(camera, rows[0].start, rows[-1].end) == []


async def complete_segments_after_stop(supervisor: RecordingSupervisor, camera: str) -> list[Segment]:
    """The index is closed after `supervising`; read the rows again from its file."""
    async with await SegmentIndex.open(supervisor.root.parent / DB_FILE) as index:
        return await complete_segments(index, camera)


@pytest.mark.slow
async def test_stall_drop_and_a_camera_that_goes_away_are_gaps(tmp_path: Path) -> None:
    specs = [
        spec("rec-stall", "127.0.1.42", stall_after_s=3.0),
        spec("rec-drop", "127.0.1.43", drop_after_s=3.0),
        spec("rec-away", "127.0.1.44"),
    ]
    async with running(specs) as cameras, supervising(tmp_path) as supervisor:
        stall, drop, away = (camera_id(c.spec.endpoint_ref) for c in cameras)
        for simulated in cameras:
            supervisor.update(ready_report(simulated))

        def ended(camera: str, reason: str, count: int) -> bool:
            recorder = supervisor.recorder(camera)
            return recorder is not None and sum(e.reason == reason for e in recorder.history) >= count

        await wait_segments(supervisor, away, 2)
        await cameras[2].stop()  # the camera goes away for a while...
        down_at = time.monotonic()
        await eventually(lambda: ended(away, "drop", 1) and ended(away, "open_failed", 2), timeout=20)
        back = SimulatedCamera(specs[2])
        await back.start()  # ...and comes back on the same address
        try:
            down_s = time.monotonic() - down_at
            await eventually(lambda: ended(stall, "stall", 2) and ended(drop, "drop", 2), timeout=40)
            await wait_segments(supervisor, away, 4)
        finally:
            stall_recorder = supervisor.recorder(stall)
            assert stall_recorder is not None
            stalls = [e for e in stall_recorder.history if e.reason == "stall"]
            stats = supervisor.stats()
        await back.stop()
    # Stalls are detected within the stall timeout (2 s here; the requirement is 10 s) of the last packet.
    for end in stalls:
        assert end.last_packet_monotonic is not None
        assert end.ended_monotonic - end.last_packet_monotonic < 2.0 + 1.0
    assert stats[stall].stalls_total >= 2 and stats[stall].state in ("stalled", "reconnecting", "stopped")
    async with await SegmentIndex.open(tmp_path / DB_FILE) as index:
        for camera, reason in ((stall, "stall"), (drop, "drop"), (away, "drop")):
            rows = await complete_segments(index, camera)
            everything = (rows[0].start, rows[-1].end)
            gaps = await index.gaps(camera, *everything)
            assert gaps and all(g.reason == reason for g in gaps), (camera, gaps)
            assert stats[camera].gaps_total == len(gaps)
            assert stats[camera].gap_seconds_total == pytest.approx(sum(g.seconds for g in gaps), abs=1e-3)
            assert_monotonic(rows)
            durations = [check_segment(tmp_path / "recordings", row) for row in rows]
            # Durations add up to the time recorded minus the recorded gaps.
            covered = (rows[-1].end - rows[0].start).total_seconds()
            assert abs(sum(durations) + sum(g.seconds for g in gaps) - covered) < FILE_VS_INDEX_S * len(rows)
            for gap in gaps:  # each gap lies between two segments, touching both
                assert any(r.end == gap.start for r in rows) and any(r.start == gap.end for r in rows), gap
        away_gaps = await index.gaps(away, datetime.min.replace(tzinfo=UTC), datetime.now(UTC))
        assert max(g.seconds for g in away_gaps) >= down_s


async def test_camera_clock_far_off_keeps_agent_times(tmp_path: Path) -> None:
    specs = [spec("rec-ahead", "127.0.1.45", clock_offset_s=1e7), spec("rec-behind", "127.0.1.46", clock_offset_s=-3e5)]
    started = datetime.now(UTC)
    async with running(specs) as cameras, supervising(tmp_path) as supervisor:
        for simulated in cameras:
            supervisor.update(ready_report(simulated))
        ids = [camera_id(c.spec.endpoint_ref) for c in cameras]
        for camera in ids:
            await wait_segments(supervisor, camera, 2)
        rows = {camera: await complete_segments(supervisor.index, camera) for camera in ids}
    for camera in ids:
        assert_monotonic(rows[camera])
        # Times come from the agent's clock, not the camera's (months ahead or days behind).
        assert started - timedelta(seconds=1) <= rows[camera][0].start <= started + timedelta(seconds=15)
        for row in rows[camera]:
            check_segment(tmp_path / "recordings", row)


async def test_sub_stream_only_when_configured(tmp_path: Path) -> None:
    config = recording_config(cameras={specs_ref("rec-sub"): {"record_sub": True}})
    async with running([spec("rec-sub", "127.0.1.47")]) as cameras, supervising(tmp_path, config) as supervisor:
        supervisor.update(ready_report(cameras[0]))
        main = camera_id(cameras[0].spec.endpoint_ref)
        assert supervisor.cameras() == [main, main + ".sub"]
        await wait_segments(supervisor, main + ".sub", 1)


def specs_ref(name: str) -> str:
    return spec(name, "127.0.1.1").endpoint_ref


async def test_wrong_password_never_reaches_logs_or_results(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "Wr0ng/p@ss:word%"

    def login(endpoint_ref: str, address: str) -> Login:
        return Login("admin", wrong)

    caplog.set_level(logging.DEBUG)
    async with (
        running([spec("rec-auth", "127.0.1.48")]) as cameras,
        supervising(tmp_path, login=login) as supervisor,
    ):
        supervisor.update(ready_report(cameras[0]))
        camera = camera_id(cameras[0].spec.endpoint_ref)

        def failed_twice() -> bool:
            recorder = supervisor.recorder(camera)
            return recorder is not None and len(recorder.history) >= 2

        await eventually(failed_twice, timeout=20)
        recorder = supervisor.recorder(camera)
        assert recorder is not None
        details = [e.detail for e in recorder.history]
    assert all(e == "open_failed" for e in [e.reason for e in recorder.history])
    text = "\n".join(details + [r.getMessage() for r in caplog.records])
    for secret in (wrong, PASSWORD):
        for form in secret_forms(secret):
            assert form not in text
    assert "rtsp://127.0.1.48" in text or "127.0.1.48" in text or details


class SteppedClock(SystemClock):
    """The system clock, stepped back an hour after `step_after` readings of the wall time."""

    def __init__(self, step_after: int) -> None:
        self.readings = 0
        self.step_after = step_after

    def now(self) -> datetime:
        self.readings += 1
        shift = timedelta(hours=1) if self.readings > self.step_after else timedelta(0)
        return super().now() - shift


@pytest.mark.slow
async def test_agent_clock_stepped_back_keeps_segment_times_monotonic(tmp_path: Path) -> None:
    clock = SteppedClock(step_after=1)  # the first connection reads the true time, every later one an hour back
    async with (
        running([spec("rec-step", "127.0.1.52", drop_after_s=2.5)]) as cameras,
        supervising(tmp_path, clock=clock) as supervisor,
    ):
        supervisor.update(ready_report(cameras[0]))
        camera = camera_id(cameras[0].spec.endpoint_ref)
        await eventually(lambda: supervisor.stats()[camera].reconnects_total >= 3, timeout=30)
        await wait_segments(supervisor, camera, 3)
        rows = await complete_segments(supervisor.index, camera)
        gaps = await supervisor.index.gaps(camera, rows[0].start - timedelta(days=1), rows[-1].end)
    assert clock.readings > 1
    assert_monotonic(rows)
    for gap in gaps:
        assert gap.end >= gap.start
    for row in rows:
        check_segment(tmp_path / "recordings", row)


async def test_udp_transport_and_a_restart_leave_a_gap(tmp_path: Path) -> None:
    config = recording_config(transport="udp")
    async with running([spec("rec-udp", "127.0.1.53")]) as cameras:
        camera = camera_id(cameras[0].spec.endpoint_ref)
        async with supervising(tmp_path, config) as supervisor:
            supervisor.update(ready_report(cameras[0]))
            await wait_segments(supervisor, camera, 1)
        # The agent restarts: the time it was not recording is a gap between the two runs' segments.
        async with supervising(tmp_path, config) as supervisor:
            supervisor.update(ready_report(cameras[0]))
            before = len(await complete_segments(supervisor.index, camera))
            await wait_segments(supervisor, camera, before + 1)
            rows = await complete_segments(supervisor.index, camera)
            gaps = await supervisor.index.gaps(camera, rows[0].start, rows[-1].end)
    assert_monotonic(rows)
    assert [g.reason for g in gaps] == ["not_recording"]
    assert any(r.end == gaps[0].start for r in rows) and any(r.start == gaps[0].end for r in rows)
    for row in rows:
        check_segment(tmp_path / "recordings", row)
