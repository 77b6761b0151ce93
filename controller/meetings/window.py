"""When a session can be entered: from `margin` before its start until its end.

A join link may be for one occurrence or for a whole series; for a series the session to enter is the live
occurrence whose window holds the current time, else the next one (to tell the visitor when to come back).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.bookings.models import Occurrence


class Entry(enum.StrEnum):
    OPEN = "open"
    TOO_EARLY = "too_early"
    OVER = "over"


@dataclass(frozen=True)
class SessionWindow:
    occurrence: Occurrence
    opens_at: datetime
    entry: Entry

    @property
    def starts_at(self) -> datetime:
        return self.occurrence.starts_at

    @property
    def ends_at(self) -> datetime:
        return self.occurrence.ends_at


def session_window(occurrences: Sequence[Occurrence], now: datetime, margin: timedelta) -> SessionWindow | None:
    """The occurrence open now, else the next one, else the last one (over); None without live occurrences."""
    live = sorted((occ for occ in occurrences if not occ.cancelled), key=lambda occ: occ.starts_at)
    if not live:
        return None
    for occ in live:
        if occ.starts_at - margin <= now < occ.ends_at:
            return SessionWindow(occ, occ.starts_at - margin, Entry.OPEN)
    upcoming = [occ for occ in live if occ.starts_at - margin > now]
    if upcoming:
        return SessionWindow(upcoming[0], upcoming[0].starts_at - margin, Entry.TOO_EARLY)
    return SessionWindow(live[-1], live[-1].starts_at - margin, Entry.OVER)
