"""`python -m controller import FILE [--dry-run] [--kind KIND]`: the roster import from the command line,
with a text progress bar on stderr for large files."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.ext.asyncio import AsyncSession

from common.clock import SystemClock
from controller.people import importer
from controller.people.importer import Kind, RosterImportError
from controller.people.tabular import MAX_FILE_BYTES, TableError, read_table

BAR_WIDTH = 30
BAR_FROM_ROWS = 1000
"""Smaller files finish before a bar would help."""


class CommandFailed(Exception):
    """The import cannot run; the message says why."""


class ProgressBar:
    """`[#####.....]  1200/20000` redrawn in place on a stream, only when the drawn text changes."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream, self._label, self._last = stream, label, ""

    def __call__(self, done: int, total: int) -> None:
        filled = BAR_WIDTH * done // max(total, 1)
        text = f"\r{self._label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * done // max(total, 1):3d}%"
        if text != self._last:
            self._stream.write(text)
            self._stream.flush()
            self._last = text

    def close(self) -> None:
        if self._last:
            self._stream.write("\n")
            self._stream.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a .csv (UTF-8) or .xlsx file with a header row")
    parser.add_argument("--dry-run", action="store_true", help="check every row and report, change nothing")
    parser.add_argument("--kind", choices=[kind.value for kind in Kind], help="what the file holds (default: guess)")
    parser.add_argument("--json", action="store_true", help="print a JSON object")


def _read(path: Path) -> bytes:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise CommandFailed(f"{path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: split it")
    return path.read_bytes()


async def run(session: AsyncSession, args: argparse.Namespace, stream: TextIO | None = None) -> dict[str, Any]:
    path = Path(args.file)
    try:
        data = await asyncio.to_thread(_read, path)
        table = await asyncio.to_thread(read_table, data, path.name)
    except OSError as exc:
        raise CommandFailed(f"cannot read {path}: {exc.strerror}") from None
    except TableError as exc:
        raise CommandFailed(f"{path}: {exc}") from None
    bar = ProgressBar(stream or sys.stderr, path.name) if len(table.rows) >= BAR_FROM_ROWS else None
    try:
        report = await importer.run(
            session,
            table,
            Kind(args.kind) if args.kind else None,
            now=SystemClock().now(),
            actor="cli",
            dry_run=args.dry_run,
            progress=bar,
        )
    except RosterImportError as exc:
        raise CommandFailed(f"{path}: {exc}") from None
    finally:
        if bar is not None:
            bar.close()
    return report.to_dict()


def describe(result: dict[str, Any]) -> str:
    """The human-readable report: counts, then each bad row."""
    verb = "would change" if result["dry_run"] else ("applied" if result["applied"] else "NOT applied")
    lines = [
        f"{result['kind']}: {result['rows']} rows; {verb}: {result['created']} created, {result['updated']} updated, "
        f"{result['unchanged']} unchanged; {result['error_count']} bad rows"
    ]
    lines += [f"  row {error['row']}: {error['message']}" for error in result["errors"]]
    if result["error_count"] > len(result["errors"]):
        lines.append(f"  ... and {result['error_count'] - len(result['errors'])} more")
    return "\n".join(lines)
