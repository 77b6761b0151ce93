"""Real answers of the join-links and feed-token routes match the models the OpenAPI document gives for them, and
an occurrence that is not an ASCII number is a 422, not a server error."""

from __future__ import annotations

from typing import Any

from controller.calendar.answers import FeedTokenRevokedOut, FeedUrlsOut, JoinLinksOut
from tests.controller.bookings.conftest import Site, as_user
from tests.controller.conftest import Client


async def test_calendar_answers_match_their_documented_models(client: Client, site: Site) -> None:
    booker = await as_user(client, site.booker)
    body: dict[str, Any] = {
        "title": "Họp cụm trường",
        "mode": "meeting",
        "host_room": site.room,
        "participant_rooms": [site.other_room],
        "start": "2026-01-06T09:00:00+07:00",
        "end": "2026-01-06T10:00:00+07:00",
        "recurrence": {"rule": "FREQ=DAILY;COUNT=2"},
    }
    status, made = await booker.send("POST", "/api/bookings", body)
    assert status == 201
    occurrence = made["occurrences"][1]["id"]
    status, series = await booker.get(f"/api/bookings/{made['id']}/join-links")
    assert status == 200 and {link.occurrence for link in JoinLinksOut.model_validate(series).links} == {"series"}
    status, one = await booker.get(
        f"/api/bookings/{made['id']}/join-links", occurrence=str(occurrence), role="observer"
    )
    assert status == 200 and [link.occurrence for link in JoinLinksOut.model_validate(one).links] == [occurrence] * 2
    status, answer = await booker.get(f"/api/bookings/{made['id']}/join-links", occurrence="²")
    assert status == 422 and "occurrence" in answer["error"]
    status, urls = await booker.send("POST", "/api/calendar/feed-token")
    assert status == 201 and FeedUrlsOut.model_validate(urls).room_feed.endswith("/rooms/{room_id}.ics")
    status, revoked = await booker.send("POST", "/api/calendar/feed-token/revoke")
    assert status == 200 and FeedTokenRevokedOut.model_validate(revoked).revoked
