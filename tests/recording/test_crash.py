"""kill -9 of a recording process at random moments: every finished fragment plays, the loss is at most the
open fragment, and the index agrees with the disk after reconciliation."""

from __future__ import annotations

import asyncio
import random
import struct
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agents.recording.cameras import camera_id
from agents.recording.index import DB_FILE, Segment, SegmentIndex
from agents.recording.reconcile import reconcile
from tests.agents.cameras import running, spec
from tests.recording.helpers import check_segment, recording_config
from tests.waiting import eventually

ROUNDS = 10
FRAGMENT_S = recording_config().fragment_s
# What a kill may lose: the open fragment (0.5 s), plus one frame and the time between the last packet's
# arrival and the kill (scheduling on a loaded 2-core machine): 0.3 s.
LOSS_BOUND_S = FRAGMENT_S + 0.3


def largest_fragment(root: Path, rows: list[Segment]) -> int:
    """The largest moof+mdat pair in the complete segments (what one fragment weighs on disk)."""
    largest = 0
    for row in rows:
        data = (root / row.path).read_bytes()
        offset = moof = 0
        while offset + 8 <= len(data):
            size, kind = struct.unpack(">I4s", data[offset : offset + 8])
            if kind == b"moof":
                moof = size
            elif kind == b"mdat":
                largest = max(largest, moof + size)
            offset += max(size, 8)
    return largest


def mp4_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.mp4")) if root.exists() else 0


@pytest.mark.slow
async def test_kill_9_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(4)
    state = tmp_path / "state"
    root = state / "recordings"
    repaired_total = timed = 0
    async with running([spec("rec-crash", "127.0.1.50")]) as cameras:
        camera = cameras[0]
        cam_id = camera_id(camera.spec.endpoint_ref)
        for round_ in range(ROUNDS):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.recording.child",
                str(state),
                camera.stream_urls["main"],
                camera.spec.endpoint_ref,
                camera.spec.host,
                stdout=asyncio.subprocess.PIPE,
            )
            try:
                assert process.stdout is not None
                line = await asyncio.wait_for(process.stdout.readline(), 30)
                assert line.strip() == b"started", line
                # A random moment: when the recordings have grown by a random amount (never on a boundary).
                target = mp4_bytes(root) + rng.randint(20_000, 1_500_000)
                await eventually(lambda: mp4_bytes(root) >= target, timeout=30, interval=0.005)  # noqa: B023
            finally:
                killed_at = datetime.now(UTC)
                process.kill()
                await process.wait()
            assert process.returncode == -9

            async with await SegmentIndex.open(state / DB_FILE) as index:
                before = {row.id: row for row in await index.all_segments(cam_id)}
                open_rows = [row for row in before.values() if not row.complete]
                assert len(open_rows) <= 1, open_rows
                report = await reconcile(index, root)
                rows = await index.all_segments(cam_id)
            # The index agrees with the disk.
            assert all(row.complete for row in rows)
            on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.mp4")}
            assert {row.path for row in rows} == on_disk, round_
            assert report.orphans_indexed == 0 and report.rows_dropped == 0
            # Every finished fragment plays: each file starts on a keyframe and decodes to the end.
            for row in rows:
                if row.id not in before or not before[row.id].complete:
                    check_segment(root, row)
            # The loss is at most the open fragment: what reconciliation cut is less than one fragment, and the
            # media kept reaches to within a fragment of the kill (the open segment's row is updated every
            # second with its start as estimated then, which discounts the burst of buffered frames after PLAY;
            # a segment killed in its first second still has its provisional start, and is only checked by size).
            assert report.bytes_cut <= largest_fragment(root, rows), (round_, report)
            for row in open_rows:
                kept = next((r for r in rows if r.id == row.id), None)
                repaired_total += kept is not None
                if not row.duration_s:
                    continue  # killed within a second of the segment's start, before its row was updated
                kept_until = row.start if kept is None else kept.end
                lost = (killed_at - kept_until).total_seconds()
                # Below zero: the kept media seems to end after the kill. Segment times are estimated from
                # packet arrivals in the recording process; on a loaded machine it reads late (and the
                # simulator's pacer catches up in bursts), which dates media up to about half a second late.
                # The claim under test is the upper bound.
                assert -1.0 <= lost <= LOSS_BOUND_S, (round_, lost, row, kept)
                timed += 1
            segments_ends = [r.end for r in rows]
            assert segments_ends == sorted(segments_ends)
    assert repaired_total >= ROUNDS // 2  # most kills hit an open segment that was cut back and kept
    assert timed >= 3  # about three kills in four come a second or more into a 4 s segment
