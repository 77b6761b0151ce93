"""Holds: a technician keeps the recordings of a camera between two times out of retention's reach.

A hold is a time range of one camera kept in the index (`SegmentIndex.set_hold`), and the index marks every
segment that overlaps a hold range as held: those recorded already, and those recorded into the range later
(a hold placed for an incident still going on, or a camera's open segment growing into it). Retention never
deletes a held segment, not even to keep the free-space floor. `HoldRequest` validates what an API route
receives; `place` and `release` apply it. Releasing part of a range keeps the rest of it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger(__name__)

MAX_HOLD = timedelta(days=366)


class HoldStore(Protocol):
    async def set_hold(self, camera: str, start: datetime, end: datetime, held: bool, /) -> object: ...
    async def holds(self, camera: str, /) -> list[tuple[datetime, datetime]]: ...


class HoldRequest(BaseModel):
    """A time range of one camera's recordings (UTC offsets required; end after start, at most a year)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: AwareDatetime = Field(description="the first moment to keep")
    end: AwareDatetime = Field(description="the last moment to keep")
    reason: str = Field(default="", max_length=500, description="why (an incident number, say); logged")

    @model_validator(mode="after")
    def _ordered(self) -> HoldRequest:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > MAX_HOLD:
            raise ValueError(f"a hold covers at most {MAX_HOLD.days} days")
        return self


async def place(index: HoldStore, camera: str, request: HoldRequest) -> object:
    """Hold the camera's segments that overlap the range; returns what the index returns (segments marked)."""
    result = await index.set_hold(camera, request.start, request.end, True)
    logger.info("%s: recordings held from %s to %s (%r)", camera, request.start, request.end, request.reason)
    return result


async def release(index: HoldStore, camera: str, request: HoldRequest) -> object:
    """Release the hold over the range; retention may delete those segments again."""
    result = await index.set_hold(camera, request.start, request.end, False)
    logger.info("%s: hold released from %s to %s", camera, request.start, request.end)
    return result
