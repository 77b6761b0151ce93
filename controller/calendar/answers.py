"""The JSON shapes of the calendar routes' answers and the join-links query, for the OpenAPI document (the
handlers in controller.web.calendar_routes parse and build these by hand; tests/controller/calendar/test_answers.py
checks real answers against them)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from controller.calendar.joinlinks import JoinRole


class JoinLinksQuery(BaseModel):
    """GET /api/bookings/{id}/join-links: which rooms, roles and occurrence (all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    room: list[int] = Field(default_factory=list, description="room ids of the booking (default: all of them)")
    role: list[JoinRole] = Field(
        default_factory=list, description="default: host for the host room, participant for the others"
    )
    occurrence: int | None = Field(default=None, ge=0, description="an occurrence id; without it, the series")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JoinLinkOut(_Answer):
    room: int
    room_name: str
    role: str
    occurrence: int | Literal["series"]
    url: str
    not_before: AwareDatetime
    expires: AwareDatetime


class JoinLinksOut(_Answer):
    booking: int
    links: list[JoinLinkOut]


class FeedUrlsOut(_Answer):
    user_feed: str = Field(description="the caller's own feed (shown once: the token is in it)")
    room_feed: str = Field(description="a room's feed: put the room id in place of {room_id}")


class FeedTokenRevokedOut(_Answer):
    revoked: bool
