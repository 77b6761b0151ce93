"""The controller's side of a meeting: a join link opens the meeting page inside the entry window, and the page
gets a short-lived token for the node the session is placed on; outside the window, or with a bad link, it is
refused with the reason and the session's times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from common.clock import ManualClock
from controller import state
from controller.medianodes import MEDIA_NODES
from protocol.media import MediaTokens, MeetingRole, NodeLoad, NodeReport, TokenKind, TokenRefused
from protocol.meeting import JoinInfo
from tests.controller.bookings.conftest import Site, as_user
from tests.controller.conftest import ORIGIN, Client

START = "2026-01-06T09:00:00+07:00"  # 02:00 UTC; the ManualClock starts at 2026-01-05 01:00 UTC
END = "2026-01-06T10:00:00+07:00"


def _report(node_id: str, port: int) -> NodeReport:
    load = NodeLoad(rooms=0, relays=0, publishers=0, subscribers=0, streams_out=0, cpu=0.0)
    url = f"http://127.0.0.1:{port}"
    return NodeReport(node_id=node_id, public_url=url, control_url=url, version="t", capacity_streams=100, load=load)


async def _move_to(clock: ManualClock, moment: datetime) -> None:
    await clock.advance((moment - clock.now()).total_seconds())


async def _links(client: Client, site: Site, mode: str) -> tuple[int, dict[str, str]]:
    booker = await as_user(client, site.booker)
    body = {"title": "Toán 5A", "mode": mode, "host_room": site.room, "participant_rooms": [site.other_room],
            "start": START, "end": END}  # fmt: skip
    status, created = await booker.send("POST", "/api/bookings", body)
    assert status == 201, created
    booking_id = int(created["id"])
    status, answer = await booker.get(f"/api/bookings/{booking_id}/join-links", role="host,participant,observer")
    assert status == 200, answer
    client.session.cookie_jar.clear()
    urls = {f"{link['room']}:{link['role']}": link["url"] for link in answer["links"]}
    return booking_id, urls


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def _join(client: Client, url: str, name: str = "", origin: bool = True) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        "/api/meetings/join", json={"token": _token(url), "name": name}, headers=ORIGIN if origin else {}
    )
    return response.status, await response.json()


async def test_entry_window_placement_and_the_meeting_token(client: Client, app: web.Application, site: Site) -> None:
    clock = app[state.CLOCK]
    assert isinstance(clock, ManualClock)
    booking_id, urls = await _links(client, site, "class")
    host_url, observer_url = urls[f"{site.room}:host"], urls[f"{site.other_room}:observer"]

    await _move_to(clock, datetime(2026, 1, 6, 1, 35, tzinfo=UTC))  # the link is valid, the room is not open
    status, body = await _join(client, host_url)
    assert (status, body["reason"]) == (403, "too_early") and body["starts_at"] == "2026-01-06T02:00:00+00:00"
    assert body["opens_at"] == "2026-01-06T01:45:00+00:00"
    page = await client.get(host_url.removeprefix("http://controller.test"))
    text = await page.text()
    assert page.status == 200 and 'id="meeting"' not in text  # the join page says when it is, in local time
    assert "2026-01-06 09:00–10:00" in text and "Asia/Ho_Chi_Minh" in text

    await _move_to(clock, datetime(2026, 1, 6, 1, 46, tzinfo=UTC))
    status, body = await _join(client, host_url)
    assert (status, body["reason"]) == (503, "no_media_node")
    app[MEDIA_NODES].registry.report(_report("media-a", 8600))

    status, body = await _join(client, host_url, name="  Cô   Lan ")
    assert status == 200, body
    info = JoinInfo.model_validate(body)
    occurrence = (await (await as_user(client, site.booker)).get(f"/api/bookings/{booking_id}"))[1]["occurrences"][0]
    client.session.cookie_jar.clear()
    room = f"meet-{booking_id}-{occurrence['id']}"
    assert info.ws_url == f"ws://127.0.0.1:8600/meet/{room}/ws"
    assert info.role is MeetingRole.HOST and info.class_mode and info.ice_servers == []
    claims = MediaTokens(app[MEDIA_NODES].secret, clock).verify(
        info.token, node="media-a", kind=TokenKind.MEETING, room=room
    )
    assert claims.role is MeetingRole.HOST and claims.class_mode and claims.name == "Cô Lan · Phòng họp A"
    assert claims.subject.startswith("join:") and claims.expires - clock.now() <= timedelta(seconds=60)
    with pytest.raises(TokenRefused) as refused:  # a token for this node and room only
        MediaTokens(app[MEDIA_NODES].secret, clock).verify(info.token, node="media-b", kind=TokenKind.MEETING)
    assert refused.value.reason == "wrong_node"

    status, body = await _join(client, observer_url)
    assert status == 200 and body["role"] == "observer" and body["ws_url"] == info.ws_url  # the room stays put

    page = await client.get(host_url.removeprefix("http://controller.test"), params={"lang": "en"})
    text = await page.text()
    assert page.status == 200 and 'id="meeting"' in text and 'data-role="host"' in text and "Online class" in text
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self' ws://127.0.0.1:8600" in csp
    assert '<script src="/static/js/meeting.js"' in text

    status, body = await _join(client, host_url, origin=False)  # another site's page cannot ask for a token
    assert status == 403
    tampered = host_url[:-2] + ("AA" if not host_url.endswith("AA") else "BB")
    status, body = await _join(client, tampered)
    assert (status, body["reason"]) == (403, "tampered")
    response = await client.post("/api/meetings/join", json={"token": "x"}, headers=ORIGIN)
    assert response.status == 422

    await _move_to(clock, datetime(2026, 1, 6, 3, 5, tzinfo=UTC))  # the session ended; the link lasts 30 min more
    status, body = await _join(client, host_url)
    assert (status, body["reason"]) == (403, "over")
    page = await client.get(host_url.removeprefix("http://controller.test"), params={"lang": "en"})
    text = await page.text()  # the join page says it is over, not that it opens later
    assert page.status == 200 and 'data-state="over"' in text and "This session is over." in text
    assert "opens at its time" not in text


async def test_two_sessions_get_tokens_for_different_rooms(client: Client, app: web.Application, site: Site) -> None:
    clock = app[state.CLOCK]
    assert isinstance(clock, ManualClock)
    app[MEDIA_NODES].registry.report(_report("media-a", 8600))
    first, first_urls = await _links(client, site, "meeting")
    await _move_to(clock, datetime(2026, 1, 6, 1, 50, tzinfo=UTC))
    app[MEDIA_NODES].registry.report(_report("media-a", 8600))
    status, body = await _join(client, first_urls[f"{site.other_room}:participant"])
    assert status == 200 and not body["class_mode"] and body["role"] == "participant"
    assert f"/meet/meet-{first}-" in body["ws_url"]
