"""At start, before any recorder runs: make the index and the recordings root agree.

- A row whose file is gone (deleted by hand, or retention crashed between removing the file and the row): the
  row is dropped.
- An incomplete row (the segment that was open when the agent was killed or the power went): its file is cut
  back to its last complete fragment (a half-written fragment is dropped, every whole one kept), then indexed
  as complete with the duration it holds; a file with no whole fragment is removed with its row.
- A file with a segment's name that the index does not know (an index lost or restored from an older copy):
  cut back the same way and indexed, its start read from its name; one that holds nothing playable is removed.
  Files with other names are left alone (counted), and symbolic links are never followed nor indexed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.recording import mp4
from agents.recording.cameras import SAFE_ID
from agents.recording.index import Segment, SegmentIndex

logger = logging.getLogger(__name__)

_NAME = re.compile(r"(?P<stamp>\d{8}T\d{6}\.\d{6})Z\.mp4")


@dataclass
class ReconcileReport:
    rows_dropped: int = 0
    """Rows whose file was gone."""
    repaired: int = 0
    """Incomplete segments cut back to their last whole fragment and indexed as complete."""
    bytes_cut: int = 0
    orphans_indexed: int = 0
    removed: int = 0
    """Files (and their rows) removed because they held nothing playable."""
    ignored: list[str] = field(default_factory=list)
    """Files under the root that are not segments (left alone)."""


def start_from_name(name: str) -> datetime | None:
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    try:
        return datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
    except ValueError:
        return None


def _segment_files(root: Path) -> tuple[list[str], list[str]]:
    """(segment files, other files) under root, relative, without following symbolic links."""
    segments: list[str] = []
    others: list[str] = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        here = Path(directory)
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
        for name in files:
            path = here / name
            relative = path.relative_to(root).as_posix()
            parts = relative.split("/")
            is_segment = (
                len(parts) == 3 and SAFE_ID.fullmatch(parts[0]) is not None and start_from_name(parts[2]) is not None
            )
            if is_segment and not path.is_symlink():
                segments.append(relative)
            else:
                others.append(relative)
    return segments, others


def _is_plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _repair(path: Path) -> tuple[int, int, mp4.Probe | None]:
    """Cut `path` to its whole fragments and probe it; (bytes kept, bytes cut, probe or None)."""
    if path.is_symlink() or not path.is_file():
        return 0, 0, None
    kept, cut = mp4.truncate_to_fragments(path)
    return kept, cut, mp4.probe(path) if kept else None


async def reconcile(index: SegmentIndex, root: Path) -> ReconcileReport:
    report = ReconcileReport()
    rows = await index.all_segments()
    known: set[str] = set()
    for row in rows:
        known.add(row.path)
        path = root / row.path
        exists = await asyncio.to_thread(_is_plain_file, path)
        if not exists:
            await index.delete(row.id)
            report.rows_dropped += 1
            logger.info("%s: segment %d has no file any more; row dropped", row.camera, row.id)
            continue
        if not row.complete:
            await _repair_row(index, root, row, report)
    files, others = await asyncio.to_thread(_segment_files, root)
    report.ignored = others
    for relative in files:
        if relative in known:
            continue
        await _index_orphan(index, root, relative, report)
    if report.rows_dropped or report.repaired or report.orphans_indexed or report.removed:
        logger.info(
            "recordings reconciled: %d row(s) without file dropped, %d open segment(s) repaired (%d bytes cut), "
            "%d orphan file(s) indexed, %d unplayable file(s) removed",
            report.rows_dropped,
            report.repaired,
            report.bytes_cut,
            report.orphans_indexed,
            report.removed,
        )
    if others:
        logger.warning("%d file(s) under the recordings root are not segments; left alone", len(others))
    return report


async def _repair_row(index: SegmentIndex, root: Path, row: Segment, report: ReconcileReport) -> None:
    path = root / row.path
    kept, cut, found = await asyncio.to_thread(_repair, path)
    report.bytes_cut += cut
    if found is None:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        await index.delete(row.id)
        report.removed += 1
        return
    end = row.start + timedelta(seconds=found.duration_s)
    await index.finish_segment(row.id, end, found.duration_s, kept, complete=True)
    report.repaired += 1
    logger.info(
        "%s: segment %d repaired: %.2f s kept, %d bytes of a cut-off fragment dropped",
        row.camera,
        row.id,
        found.duration_s,
        cut,
    )


async def _index_orphan(index: SegmentIndex, root: Path, relative: str, report: ReconcileReport) -> None:
    camera, _, name = relative.split("/")
    start = start_from_name(name)
    assert start is not None
    path = root / relative
    kept, cut, found = await asyncio.to_thread(_repair, path)
    report.bytes_cut += cut
    if found is None:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        report.removed += 1
        return
    end = start + timedelta(seconds=found.duration_s)
    await index.add_segment(camera, relative, start, end=end, duration_s=found.duration_s, bytes=kept, complete=True)
    report.orphans_indexed += 1
    logger.info("%s: orphan segment %s indexed (%.2f s)", camera, name, found.duration_s)
