"""Roster import: units, rooms, staff, classes, children and guardians from a table (see `tabular`).

Every run first checks every row against the database and the rows before it, and reports each bad row with
its number and why (missing field, unknown unit, bad date, duplicate, ...). A dry run stops there. An apply
happens only when no row is bad, inside the caller's transaction (all rows or none), and is idempotent: rows
are matched on stable natural keys, so a second apply of the same file creates and changes nothing.

Natural keys: units (name, parent), rooms (unit, name), staff and guardians' accounts (username), classes
(school, school year, name), children (school, pupil code), guardianships (child, parent account). A school or
unit is named by its id or its exact name (a name shared by two units must be given as an id).
Accounts made by an import have no usable password: an administrator resets it to hand one out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from controller import audit
from controller.people.import_rows import COLUMNS, UNUSABLE_PASSWORD, BadRow, Kind, RowChecks
from controller.people.models import Child, ClassPlacement, Guardianship
from controller.people.tabular import Table

logger = logging.getLogger(__name__)

__all__ = ["COLUMNS", "UNUSABLE_PASSWORD", "Kind", "Report", "RosterImportError", "RowError", "guess_kind", "run"]

MAX_REPORTED_ERRORS = 1000
FLUSH_EVERY = 2000


Progress = Callable[[int, int], None]


class RosterImportError(ValueError):
    """The import cannot run at all (unknown kind, missing columns); the message says why."""


@dataclass(frozen=True)
class RowError:
    row: int
    message: str


@dataclass
class Report:
    kind: Kind
    rows: int
    dry_run: bool
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    applied: bool = False

    def add_error(self, row: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(row, message))

    def count(self, action: str) -> None:
        if action == "created":
            self.created += 1
        elif action == "updated":
            self.updated += 1
        else:
            self.unchanged += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "rows": self.rows,
            "dry_run": self.dry_run,
            "applied": self.applied,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "error_count": self.error_count,
            "errors": [{"row": e.row, "message": e.message} for e in self.errors],
        }


def guess_kind(headers: Iterable[str]) -> Kind | None:
    """The kind whose required columns the headers have, when exactly one kind fits best."""
    present = set(headers)
    fitting = [kind for kind, (required, _) in COLUMNS.items() if set(required) <= present]
    if len(fitting) > 1:  # e.g. children's columns include classes' ones: take the most specific
        fitting.sort(key=lambda kind: len(COLUMNS[kind][0]), reverse=True)
        if len(COLUMNS[fitting[0]][0]) == len(COLUMNS[fitting[1]][0]):
            return None
    return fitting[0] if fitting else None


async def run(
    session: AsyncSession,
    table: Table,
    kind: Kind | None,
    *,
    now: datetime,
    actor: str,
    dry_run: bool,
    address: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Check every row; unless `dry_run` or a row is bad, apply them in `session` (the caller commits)."""
    kind = kind or guess_kind(table.headers)
    if kind is None:
        raise RosterImportError("cannot tell what the file holds from its columns: give the kind")
    required, _ = COLUMNS[kind]
    missing = [name for name in required if name not in table.headers]
    if missing:
        raise RosterImportError(
            f"the file has no column {', '.join(missing)} (a {kind.value} file needs {', '.join(required)})"
        )
    report = Report(kind=kind, rows=len(table.rows), dry_run=dry_run)
    work = RowChecks(session, kind, now)
    await work.load(table.rows)
    if kind is Kind.GUARDIANS:
        await work.load_links()
    total = len(table.rows) * (1 if dry_run else 2)
    for done, row in enumerate(table.rows, start=1):
        if progress is not None and done % 200 == 0:
            progress(done, total)
        if row.problem is not None:
            report.add_error(row.number, row.problem)
            continue
        blank = [name for name in required if not row.values.get(name)]
        if blank:
            report.add_error(row.number, f"missing field {', '.join(blank)}")
            continue
        try:
            plan = work.check(row)
        except BadRow as exc:
            report.add_error(row.number, str(exc))
            continue
        work.plans.append(plan)
        report.count(plan.action)
    if dry_run or report.error_count:
        if progress is not None:
            progress(total, total)
        return report
    await _apply(work, progress, len(table.rows), total)
    report.applied = True
    audit.record(
        session,
        at=now,
        actor=actor,
        action="roster.import",
        target=f"import:{kind.value}",
        details={"rows": report.rows, "created": report.created, "updated": report.updated},
        address=address,
    )
    return report


async def _apply(work: RowChecks, progress: Progress | None, offset: int, total: int) -> None:
    new_children: list[tuple[Child, int | None]] = []
    for done, plan in enumerate(work.plans, start=1):
        if plan.apply is not None:
            result = plan.apply()
            if hasattr(result, "__await__"):
                await result
            if isinstance(result, Child):
                new_children.append((result, result.class_id))
        if done % FLUSH_EVERY == 0:
            await work.session.flush()
            _place(work, new_children)
            new_children = []
            if progress is not None:
                progress(offset + done, total)
    await work.session.flush()
    _place(work, new_children)
    for child_id, user, relationship in getattr(work, "pending_links", []):
        work.session.add(
            Guardianship(child_id=child_id, user_id=user.id, relationship=relationship, created_at=work.now)
        )
    await work.session.flush()
    if progress is not None:
        progress(total, total)


def _place(work: RowChecks, children: list[tuple[Child, int | None]]) -> None:
    for child, class_id in children:
        if class_id is not None:
            work.session.add(ClassPlacement(child_id=child.id, class_id=class_id, started_at=work.now))
