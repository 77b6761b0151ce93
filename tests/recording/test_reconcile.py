"""Reconciliation at start: rows without files, a segment cut off mid-fragment, orphans, links, other files."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from agents.recording import mp4
from agents.recording.index import DB_FILE, SegmentIndex
from agents.recording.reconcile import reconcile, start_from_name
from tests.recording.conftest import Recorded
from tests.recording.helpers import check_segment, decodes


async def test_index_and_disk_agree_after_reconcile(recorded: Recorded, tmp_path: Path) -> None:
    state = recorded.copy_to(tmp_path / "state")
    root = state / "recordings"
    first, second, third, *_ = recorded.segments
    async with await SegmentIndex.open(state / DB_FILE) as index:
        # 1. A row whose file is gone.
        (root / first.path).unlink()
        # 2. The open segment at a crash: its row incomplete, its file cut in the middle of a fragment.
        path = root / second.path
        whole = mp4.complete_length(path)
        assert whole == path.stat().st_size  # a closed segment ends on a whole box
        size = path.stat().st_size
        os.truncate(path, size - 5000)
        await index.finish_segment(second.id, second.start, 0.0, 0, complete=False)
        # 3. An orphan: a segment file the index does not know.
        await index.delete(third.id)
        # 4. A planted link, a file that is not a segment, an orphan that holds nothing.
        (root / recorded.camera / "elsewhere").mkdir()
        link = root / recorded.camera / "2026-01-01"
        link.symlink_to(root / recorded.camera / "elsewhere")
        (root / "notes.txt").write_text("not a segment")
        empty = root / recorded.camera / third.path.split("/")[1] / "20260101T000000.000000Z.mp4"
        empty.write_bytes(b"\x00\x00\x00\x08free")

        report = await reconcile(index, root)

        assert report.rows_dropped == 1
        assert report.repaired == 1 and 0 < report.bytes_cut <= 5000 + 200_000
        assert report.orphans_indexed == 1
        assert report.removed == 1 and not empty.exists()
        assert "notes.txt" in report.ignored
        rows = await index.all_segments(recorded.camera)
        assert all(row.complete for row in rows)
        # The index agrees with the disk: every row has its file, every segment file has its row.
        on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.mp4") if not p.is_symlink()}
        assert {row.path for row in rows} == on_disk
        for row in rows:
            check_segment(root, row)
        repaired = next(row for row in rows if row.id == second.id)
        # The loss is at most the cut-off fragment (0.5 s here) plus the packet cut from it.
        assert second.duration_s - 0.6 <= repaired.duration_s < second.duration_s
        assert repaired.end == repaired.start + timedelta(seconds=repaired.duration_s)
        orphan = next(row for row in rows if row.path == third.path)
        assert orphan.start == start_from_name(third.path.rsplit("/", 1)[1])  # read from its name
        assert decodes(root / orphan.path) > 0
        # A second pass finds nothing to do.
        again = await reconcile(index, root)
        assert (again.rows_dropped, again.repaired, again.orphans_indexed, again.removed) == (0, 0, 0, 0)


def test_complete_length_of_a_file_cut_anywhere(recorded: Recorded, tmp_path: Path) -> None:
    source = recorded.state_dir / "recordings" / recorded.segments[0].path
    data = source.read_bytes()
    lengths = set()
    for cut in range(100, len(data), max(1, len(data) // 40)):
        path = tmp_path / "cut.mp4"
        path.write_bytes(data[:cut])
        keep = mp4.complete_length(path)
        assert keep <= cut
        lengths.add(keep)
        if keep:
            path.write_bytes(data[:keep])
            assert decodes(path) > 0
    assert len(lengths) > 2  # cut at different fragments
