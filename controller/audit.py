"""The append-only audit log (the database refuses UPDATE and DELETE on it: see the initial migration)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import AuditEntry

logger = logging.getLogger(__name__)


def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str = "",
    details: dict[str, Any] | None = None,
    address: str | None = None,
) -> None:
    """Add an entry to the caller's transaction (so it commits, or not, with the change it describes)."""
    session.add(AuditEntry(at=at, actor=actor, action=action, target=target, details=details or {}, address=address))
    logger.info("audit: %s %s %s", actor, action, target)
