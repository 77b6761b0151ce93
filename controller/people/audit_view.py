"""Reading the audit log for the admin page and the API: filters (actor, action, time range) and paging.

Filters are values bound into one fixed query (no SQL built from text); paging is by id, newest first, so a
page stays stable while new entries are appended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import AuditEntry

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    """Exact actor (user:NAME, cli, anonymous) or a prefix ending in '*'."""
    action: str = ""
    """Exact action (user.create) or a prefix ending in '*' (user.*)."""
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = PAGE_SIZE


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next_before_id: int | None
    """Pass as before_id for the next (older) page; None on the last page."""


def _match(column: Any, value: str) -> Any:
    if value.endswith("*"):
        prefix = value[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(prefix + "%", escape="\\")
    return column == value


async def page(session: AsyncSession, wanted: AuditFilter) -> AuditPage:
    limit = max(1, min(wanted.limit, MAX_PAGE_SIZE))
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if wanted.actor:
        query = query.where(_match(AuditEntry.actor, wanted.actor))
    if wanted.action:
        query = query.where(_match(AuditEntry.action, wanted.action))
    if wanted.since is not None:
        query = query.where(AuditEntry.at >= wanted.since)
    if wanted.until is not None:
        query = query.where(AuditEntry.at < wanted.until)
    if wanted.before_id is not None:
        query = query.where(AuditEntry.id < wanted.before_id)
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(rows, rows[-1].id if more and rows else None)


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": entry.details,
        "address": entry.address,
    }
