"""Feeds, invitations, join links and the join page on both backends: what a calendar client expands from the
feeds is exactly the stored live occurrences (Asia/Ho_Chi_Minh and a zone with daylight saving time)."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from dateutil import rrule as du
from icalendar import Calendar, Component
from sqlalchemy import select, update

from controller import state
from controller.calendar.feedtokens import CalendarFeedToken
from controller.db.models import Unit
from controller.people import tokens as api_tokens
from controller.security.tokens import sha256_hex
from controller.web.calendar_routes import _RedactJoinTokens
from tests.controller.bookings.conftest import Caller, Site, as_user
from tests.controller.conftest import Client

TUE_09 = "2026-01-06T09:00:00+07:00"
TUE_10 = "2026-01-06T10:00:00+07:00"


def booking(host: int, *, start: str = TUE_09, end: str = TUE_10, **extra: Any) -> dict[str, Any]:
    return {"title": "Tập huấn", "mode": "training", "host_room": host, "start": start, "end": end, **extra}


def expand(calendar: Component) -> dict[str, list[tuple[datetime, datetime]]]:
    """UID -> (start, end) in UTC of every instance a client shows, as dateutil expands them."""
    by_uid: dict[str, list[Component]] = defaultdict(list)
    for event in calendar.walk("VEVENT"):
        by_uid[str(event["UID"])].append(event)
    shown: dict[str, list[tuple[datetime, datetime]]] = {}
    for uid, events in by_uid.items():
        masters = [e for e in events if "RECURRENCE-ID" not in e]
        assert len(masters) == 1, uid
        master = masters[0]
        if str(master.get("STATUS", "")) == "CANCELLED":
            shown[uid] = []
            continue
        start: datetime = master.decoded("DTSTART")
        length = master.decoded("DTEND") - start
        if "RRULE" not in master:
            shown[uid] = [(start.astimezone(UTC), (start + length).astimezone(UTC))]
            continue
        rule = _text(master["RRULE"].to_ical())
        starts = {s.astimezone(UTC): s for s in du.rrulestr(f"RRULE:{rule}", dtstart=start)}
        exdates = master.get("EXDATE", [])
        for group in exdates if isinstance(exdates, list) else [exdates]:
            for value in group.dts:
                starts.pop(value.dt.astimezone(UTC))
        instances = {key: (key, (s + length).astimezone(UTC)) for key, s in starts.items()}
        for override in events:
            if "RECURRENCE-ID" in override:
                key = override.decoded("RECURRENCE-ID").astimezone(UTC)
                assert key in instances
                instances[key] = (
                    override.decoded("DTSTART").astimezone(UTC),
                    override.decoded("DTEND").astimezone(UTC),
                )
        shown[uid] = sorted(instances.values())
    return shown


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def stored(series: dict[str, Any]) -> list[tuple[datetime, datetime]]:
    return sorted(
        (datetime.fromisoformat(o["start"]), datetime.fromisoformat(o["end"]))
        for o in series["occurrences"]
        if not o["cancelled"]
    )


async def ics(client: Client, path: str, **headers: str) -> Calendar:
    response = await client.get(path, headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/calendar")
    return Calendar.from_ical(await response.read())


async def _series(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    status, series = await caller.send("POST", "/api/bookings", body)
    assert status == 201, series
    return series


async def test_room_feed_in_ho_chi_minh_moved_once_cancelled_gone(client: Client, site: Site) -> None:
    booker = await as_user(client, site.booker)
    series = await _series(
        booker,
        booking(
            site.room,
            participant_rooms=[site.other_room],
            recurrence={"rule": "FREQ=WEEKLY;BYDAY=MO,TH;UNTIL=20260129", "exdates": ["2026-01-15"]},
            start="2026-01-08T08:00:00+07:00",
            end="2026-01-08T09:30:00+07:00",
        ),
    )
    booking_id, occurrences = series["id"], series["occurrences"]
    assert len(occurrences) == 6  # Thu 8, Mon 12, Mon 19, Thu 22, Mon 26, Thu 29 (Thu 15 excepted)
    status, _ = await booker.send(
        "PATCH", f"/api/bookings/{booking_id}/occurrences/{occurrences[1]['id']}",
        {"start": "2026-01-13T14:00:00+07:00", "end": "2026-01-13T15:00:00+07:00"},
    )  # fmt: skip
    assert status == 200
    status, series = await booker.send("POST", f"/api/bookings/{booking_id}/occurrences/{occurrences[3]['id']}/cancel")
    assert status == 200
    single = await _series(booker, booking(site.room, start="2026-01-09T10:00+07:00", end="2026-01-09T11:00+07:00"))

    calendar = await ics(client, f"/calendar/rooms/{site.room}.ics")
    shown = expand(calendar)
    assert shown[f"booking-{booking_id}@controller.test"] == stored(series)
    assert shown[f"booking-{single['id']}@controller.test"] == stored(single)
    moved = datetime(2026, 1, 13, 7, 0, tzinfo=UTC)
    assert [s for s, _ in shown[f"booking-{booking_id}@controller.test"]].count(moved) == 1
    assert datetime(2026, 1, 12, 1, 0, tzinfo=UTC) not in {s for s, _ in shown[f"booking-{booking_id}@controller.test"]}
    assert datetime(2026, 1, 22, 1, 0, tzinfo=UTC) not in {s for s, _ in shown[f"booking-{booking_id}@controller.test"]}
    zones = {str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")}
    assert zones == {"Asia/Ho_Chi_Minh"}
    master = next(e for e in calendar.walk("VEVENT") if "RRULE" in e)
    assert master["DTSTART"].params["TZID"] == "Asia/Ho_Chi_Minh"
    assert "UNTIL=20260129T165959Z" in _text(master["RRULE"].to_ical())
    # The participant room's feed carries the same series; the other school's staff may not read this room's.
    other_feed = expand(await ics(client, f"/calendar/rooms/{site.other_room}.ics"))
    assert other_feed == {f"booking-{booking_id}@controller.test": stored(series)}


async def test_user_feed_across_daylight_saving_and_sequence_bumps(
    client: Client, site: Site, app: web.Application
) -> None:
    async with app[state.DB].begin() as session:
        await session.execute(update(Unit).where(Unit.id == site.world.other_school).values(time_zone="Europe/Berlin"))
    booker = await as_user(client, site.booker)
    # Daily at 08:00 Berlin from Thursday 26 March; clocks go forward on Sunday 29 March.
    series = await _series(
        booker,
        booking(
            site.other_room,
            recurrence={"rule": "FREQ=DAILY;COUNT=6"},
            start="2026-03-26T08:00:00+01:00",
            end="2026-03-26T09:00:00+01:00",
        ),
    )
    booking_id = series["id"]
    uid = f"booking-{booking_id}@controller.test"
    first = await ics(client, "/calendar/users/me.ics")
    assert expand(first)[uid] == stored(series)
    assert [s.hour for s, _ in stored(series)] == [7, 7, 7, 6, 6, 6]
    assert {str(tz["TZID"]) for tz in first.walk("VTIMEZONE")} == {"Europe/Berlin"}
    sequence = next(e for e in first.walk("VEVENT") if str(e["UID"]) == uid).decoded("SEQUENCE")

    occurrence = series["occurrences"][4]["id"]
    status, series = await booker.send(
        "PATCH", f"/api/bookings/{booking_id}/occurrences/{occurrence}",
        {"start": "2026-03-30T15:00:00+02:00", "end": "2026-03-30T16:30:00+02:00"},
    )  # fmt: skip
    assert status == 200
    status, series = await booker.send(
        "POST", f"/api/bookings/{booking_id}/occurrences/{series['occurrences'][5]['id']}/cancel"
    )
    assert status == 200
    second = await ics(client, "/calendar/users/me.ics")
    shown = expand(second)[uid]
    assert shown == stored(series) and len(shown) == 5
    assert datetime(2026, 3, 30, 13, 0, tzinfo=UTC) in {s for s, _ in shown}
    masters = [e for e in second.walk("VEVENT") if str(e["UID"]) == uid and "RECURRENCE-ID" not in e]
    assert masters[0].decoded("SEQUENCE") == sequence + 2

    # A cancelled series is one STATUS:CANCELLED event: nothing left to show.
    status, _ = await booker.send("POST", f"/api/bookings/{booking_id}/cancel")
    assert status == 200
    assert expand(await ics(client, "/calendar/users/me.ics"))[uid] == []


async def test_feeds_need_a_session_or_an_api_token_and_scope(client: Client, site: Site, app: web.Application) -> None:
    booker = await as_user(client, site.booker)
    series = await _series(booker, booking(site.room))
    client.session.cookie_jar.clear()
    assert (await client.get(f"/calendar/rooms/{site.room}.ics")).status == 401
    assert (await client.get("/calendar/users/me.ics")).status == 401
    assert (await client.get(f"/calendar/rooms/{site.room}.ics", params={"token": "x"})).status == 401
    async with app[state.DB].begin() as session:
        made = await api_tokens.create(
            session, series["organizer_id"], name="calendar", days=30, now=app[state.CLOCK].now()
        )
    bearer = {"Authorization": f"Bearer {made.secret}"}
    feed = expand(await ics(client, "/calendar/users/me.ics", **bearer))
    assert list(feed) == [f"booking-{series['id']}@controller.test"]
    assert (await client.get(f"/calendar/rooms/{site.room}.ics", headers=bearer)).status == 200
    wrong = {"Authorization": f"Bearer {made.secret}x"}
    assert (await client.get("/calendar/users/me.ics", headers=wrong)).status == 401
    # The other school's district technician may not read the school's room feed.
    await as_user(client, site.world.other_technician)
    assert (await client.get(f"/calendar/rooms/{site.room}.ics")).status == 403
    assert f"booking-{series['id']}" not in (await (await client.get("/calendar/users/me.ics")).text())


async def test_join_links_invitation_and_the_join_page(client: Client, site: Site, app: web.Application) -> None:
    booker = await as_user(client, site.booker)
    series = await _series(booker, booking(site.room, participant_rooms=[site.other_room], agenda="Chương trình"))
    booking_id = series["id"]
    status, body = await booker.get(f"/api/bookings/{booking_id}/join-links")
    assert status == 200
    assert [(link["room"], link["role"]) for link in body["links"]] == [
        (site.room, "host"),
        (site.other_room, "participant"),
    ]
    response = await client.get(
        f"/api/bookings/{booking_id}/join-links",
        params=[("room", str(site.other_room)), ("role", "presenter,observer")],
    )
    links = (await response.json())["links"]
    assert [(link["room"], link["role"]) for link in links] == [
        (site.other_room, "presenter"),
        (site.other_room, "observer"),
    ]
    assert (await client.get(f"/api/bookings/{booking_id}/join-links", params={"role": "boss"})).status == 422
    assert (await client.get(f"/api/bookings/{booking_id}/join-links", params={"room": site.room2})).status == 422

    path = links[0]["url"].removeprefix("http://controller.test")
    assert path.startswith("/join/")
    client.session.cookie_jar.clear()
    early = await client.get(path)  # the clock is at 2026-01-05 01:00 UTC: a day before
    assert early.status == 403 and 'data-reason="not_yet_valid"' in await early.text()
    clock = app[state.CLOCK]
    await clock.advance((datetime(2026, 1, 6, 1, 45, tzinfo=UTC) - clock.now()).total_seconds())  # type: ignore[attr-defined]
    page = await client.get(path)
    text = await page.text()
    assert page.status == 200, text
    assert "Tập huấn" in text and "2026-01-06 09:00–10:00" in text and "Người trình bày" in text
    assert "Asia/Ho_Chi_Minh" in text and "Phòng họp Sao Mai" in text
    english = await client.get(path, params={"lang": "en"})
    assert "Presenter" in await english.text()
    tampered = path[:-2] + ("AA" if not path.endswith("AA") else "BB")
    assert 'data-reason="tampered"' in await (await client.get(tampered)).text()
    await clock.advance(timedelta(hours=2).total_seconds())  # type: ignore[attr-defined]
    assert 'data-reason="expired"' in await (await client.get(path)).text()


async def test_invitation_is_a_request_with_the_join_link(client: Client, site: Site) -> None:
    booker = await as_user(client, site.booker)
    series = await _series(booker, booking(site.room, participant_rooms=[site.other_room], agenda="Chương trình"))
    response = await client.get(
        f"/api/bookings/{series['id']}/invitation.ics", params={"room": str(site.other_room), "role": "observer"}
    )
    assert response.status == 200
    calendar = Calendar.from_ical(await response.read())
    assert str(calendar["METHOD"]) == "REQUEST"
    (event,) = calendar.walk("VEVENT")
    url = str(event["URL"])
    assert url.startswith("http://controller.test/join/")
    assert url in str(event["DESCRIPTION"]) and "Chương trình" in str(event["DESCRIPTION"])
    assert str(event["ORGANIZER"]) == "mailto:booker@controller.test"
    assert str(event["LOCATION"]) == "Phòng họp A, Phòng họp Sao Mai"
    assert expand(calendar)[str(event["UID"])] == stored(series)
    two = await client.get(f"/api/bookings/{series['id']}/invitation.ics", params={"role": "host,observer"})
    assert two.status == 422
    # The teacher of the host school may book there but did not organise this booking: no links for them.
    teacher = await as_user(client, site.world.teacher)
    status, _ = await teacher.get(f"/api/bookings/{series['id']}/join-links")
    assert status == 403
    status, _ = await teacher.get(f"/api/bookings/{series['id']}/invitation.ics")
    assert status == 403


async def test_the_join_page_checks_the_link_against_the_booking_as_it_is_now(
    client: Client, site: Site, app: web.Application
) -> None:
    booker = await as_user(client, site.booker)
    series = await _series(booker, booking(site.room, participant_rooms=[site.other_room]))
    status, body = await booker.get(f"/api/bookings/{series['id']}/join-links")
    assert status == 200
    host, participant = (link["url"].removeprefix("http://controller.test") for link in body["links"])
    status, _ = await booker.send("PATCH", f"/api/bookings/{series['id']}", {"participant_rooms": []})
    assert status == 200
    status, _ = await booker.send("POST", f"/api/bookings/{series['id']}/cancel")
    assert status == 200
    clock = app[state.CLOCK]
    await clock.advance((datetime(2026, 1, 6, 1, 45, tzinfo=UTC) - clock.now()).total_seconds())  # type: ignore[attr-defined]
    assert 'data-reason="wrong_booking"' in await (await client.get(participant)).text()
    refused = await client.get(host, params={"lang": "en"})
    assert refused.status == 403 and 'data-reason="cancelled"' in (text := await refused.text())
    assert "This session was cancelled." in text


async def test_a_feed_token_in_the_url_opens_the_callers_feeds_until_replaced_or_revoked(
    client: Client, site: Site, app: web.Application
) -> None:
    booker = await as_user(client, site.booker)
    series = await _series(booker, booking(site.room))
    status, made = await booker.send("POST", "/api/calendar/feed-token")
    assert status == 201
    feed = made["user_feed"].removeprefix("http://controller.test")
    room_feed = made["room_feed"].removeprefix("http://controller.test").format(room_id=site.room)
    secret = feed.split("/")[3]
    assert secret.startswith("kf_") and len(secret) > 40
    async with app[state.DB]() as session:
        stored_hashes = (await session.execute(select(CalendarFeedToken.token_hash))).scalars().all()
    assert stored_hashes == [sha256_hex(secret)]  # only the hash is kept

    client.session.cookie_jar.clear()
    assert list(expand(await ics(client, feed))) == [f"booking-{series['id']}@controller.test"]
    assert f"booking-{series['id']}@" in (await (await client.get(room_feed)).text())
    assert (await client.get(feed.replace(secret, secret[:-1] + "x"))).status == 401
    assert (await client.get(feed.replace(secret, "kt_" + secret[3:]))).status == 401

    # A new token replaces the old; revoking ends the new one.
    booker = await as_user(client, site.booker)
    status, again = await booker.send("POST", "/api/calendar/feed-token")
    assert status == 201
    assert (await client.get(feed)).status == 401
    new_feed = again["user_feed"].removeprefix("http://controller.test")
    assert (await client.get(new_feed)).status == 200
    status, revoked = await booker.send("POST", "/api/calendar/feed-token/revoke")
    assert status == 200 and revoked == {"revoked": True}
    assert (await client.get(new_feed)).status == 401

    # The token opens only the user's scope: the other school's technician cannot read this school's room.
    other = await as_user(client, site.world.other_technician)
    status, theirs = await other.send("POST", "/api/calendar/feed-token")
    assert status == 201
    their_room = theirs["room_feed"].removeprefix("http://controller.test").format(room_id=site.room)
    assert (await client.get(their_room)).status == 403


def test_tokens_in_paths_are_blanked_in_the_access_log() -> None:
    record = logging.LogRecord(
        "aiohttp.access", logging.INFO, __file__, 1, '127.0.0.1 "GET /join/eyJ.abc.def HTTP/1.1" 200', None, None
    )
    feed = logging.LogRecord(
        "aiohttp.access", logging.INFO, __file__, 1, "%s", ("GET /calendar/feeds/kf_secret/me.ics",), None
    )
    redact = _RedactJoinTokens()
    assert redact.filter(record) and redact.filter(feed)
    assert record.getMessage() == '127.0.0.1 "GET /join/… HTTP/1.1" 200'
    assert feed.getMessage() == "GET /calendar/feeds/…/me.ics"


async def test_a_series_edited_after_it_began_still_expands_to_the_stored_occurrences(
    client: Client, site: Site, app: web.Application
) -> None:
    booker = await as_user(client, site.booker)
    series = await _series(booker, booking(site.room, recurrence={"rule": "FREQ=DAILY;COUNT=4"}))
    booking_id = series["id"]
    clock = app[state.CLOCK]
    await clock.advance((datetime(2026, 1, 6, 4, 0, tzinfo=UTC) - clock.now()).total_seconds())  # type: ignore[attr-defined]
    booker = await as_user(client, site.booker)  # a day later: a new session
    status, edited = await booker.send(
        "PATCH", f"/api/bookings/{booking_id}",
        {"start": "2026-01-06T13:00:00+07:00", "end": "2026-01-06T14:00:00+07:00"},
    )  # fmt: skip
    assert status == 200, edited
    kept = [o["start_local"] for o in edited["occurrences"] if not o["cancelled"]]
    assert "2026-01-06T09:00:00+07:00" in kept  # the occurrence that happened keeps its time
    shown = expand(await ics(client, f"/calendar/rooms/{site.room}.ics"))
    assert sorted(s for times in shown.values() for s in times) == stored(edited)
    # The kept occurrence is not an instance of the edited rule: it is an event of its own.
    assert any("-occurrence-" in uid for uid in shown), list(shown)
