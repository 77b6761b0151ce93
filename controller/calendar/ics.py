"""Stored bookings as RFC 5545 calendars (the `icalendar` package), built so that a client expanding them sees
exactly the stored live occurrences.

A series is one VEVENT with DTSTART in the series' zone (TZID, VTIMEZONE added for every zone used) and the
RRULE (a date UNTIL becomes the UTC end of that local day, as RFC 5545 asks when DTSTART has a zone). The rule
is expanded here as a client would (dateutil) and compared with the stored occurrences by RECURRENCE-ID:
an instance with no live occurrence (cancelled, or an exception date) becomes an EXDATE; an occurrence at other
times (moved) becomes a VEVENT with the same UID and RECURRENCE-ID; a live occurrence the rule does not give (a
series edited after it happened) becomes a VEVENT of its own. A booking with no live occurrence left is one
VEVENT with STATUS:CANCELLED. UID is stable per booking; SEQUENCE is the number of changes audited for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from dateutil import rrule as du
from icalendar import Calendar, Event, vCalAddress, vRecur, vText

from controller.bookings.drafts import BookingDetail
from controller.bookings.models import Occurrence
from controller.bookings.recurrence import parse_rule

PRODID = "-//ketnoi//bookings//VI"


@dataclass(frozen=True)
class Extra:
    """What an invitation adds to its events."""

    url: str
    description: str
    organizer: str
    organizer_name: str


def uid_of(booking_id: int, domain: str) -> str:
    return f"booking-{booking_id}@{domain}"


def rule_for_calendar(rule_text: str, zone: ZoneInfo) -> str:
    """The stored rule with a local-date UNTIL turned into the UTC end of that day."""
    rule = parse_rule(rule_text)
    if isinstance(rule.until, date) and not isinstance(rule.until, datetime):
        last = datetime.combine(rule.until, time(23, 59, 59), zone).astimezone(UTC)
        rule = dataclasses.replace(rule, until=last)
    return rule.text()


def instances(rule_text: str, dtstart: datetime) -> list[datetime]:
    """The rule's starts as a client computes them (aware, in DTSTART's zone)."""
    return list(du.rrulestr(f"RRULE:{rule_text}", dtstart=dtstart))


def _event(detail: BookingDetail, uid: str, sequence: int, stamp: datetime, extra: Extra | None) -> Event:
    booking = detail.booking
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("sequence", sequence)
    event.add("summary", booking.title)
    description = booking.agenda
    if extra is not None:
        description = f"{booking.agenda}\n\n{extra.description}".strip()
        event.add("url", extra.url)
        organizer = vCalAddress(extra.organizer)
        organizer.params["cn"] = vText(extra.organizer_name)
        event.add("organizer", organizer)
    if description:
        event.add("description", description)
    event.add("location", ", ".join(room.name for room in detail.rooms))
    event.add("categories", [booking.mode.value])
    return event


def _timed(event: Event, start: datetime, end: datetime, zone: ZoneInfo) -> Event:
    event.add("dtstart", start.astimezone(zone))
    event.add("dtend", end.astimezone(zone))
    return event


def events_of(
    detail: BookingDetail, *, sequence: int, stamp: datetime, domain: str, extra: Extra | None = None
) -> list[Event]:
    booking = detail.booking
    zone = ZoneInfo(booking.time_zone)
    uid = uid_of(booking.id, domain)
    live = [occ for occ in detail.occurrences if not occ.cancelled]
    if not live:
        event = _timed(_event(detail, uid, sequence, stamp, extra), booking.starts_at, booking.ends_at, zone)
        event.add("status", "CANCELLED")
        return [event]
    if booking.rrule is None:
        only = live[0]
        event = _timed(_event(detail, uid, sequence, stamp, extra), only.starts_at, only.ends_at, zone)
        event.add("status", "CONFIRMED")
        return [event]
    return _series(detail, live, uid, zone, sequence, stamp, extra)


def _series(
    detail: BookingDetail,
    live: Sequence[Occurrence],
    uid: str,
    zone: ZoneInfo,
    sequence: int,
    stamp: datetime,
    extra: Extra | None,
) -> list[Event]:
    booking = detail.booking
    assert booking.rrule is not None
    rule = rule_for_calendar(booking.rrule, zone)
    dtstart = booking.starts_at.astimezone(zone)
    length = booking.ends_at - booking.starts_at
    by_id = {occ.recurrence_id.astimezone(UTC): occ for occ in live}
    master = _timed(_event(detail, uid, sequence, stamp, extra), booking.starts_at, booking.ends_at, zone)
    master.add("rrule", vRecur.from_ical(rule))
    master.add("status", "CONFIRMED")
    events = [master]
    excluded: list[datetime] = []
    given: set[datetime] = set()
    for start in instances(rule, dtstart):
        key = start.astimezone(UTC)
        given.add(key)
        occ = by_id.get(key)
        if occ is None:
            excluded.append(start)
        elif occ.starts_at != key or occ.ends_at != key + length:
            moved = _timed(_event(detail, uid, sequence, stamp, extra), occ.starts_at, occ.ends_at, zone)
            moved.add("recurrence-id", start)
            moved.add("status", "CONFIRMED")
            events.append(moved)
    if excluded:
        master.add("exdate", excluded)
    for key, occ in sorted(by_id.items()):
        if key not in given:
            own_uid = uid.replace("@", f"-occurrence-{occ.id}@", 1)
            alone = _timed(_event(detail, own_uid, sequence, stamp, extra), occ.starts_at, occ.ends_at, zone)
            alone.add("status", "CONFIRMED")
            events.append(alone)
    return events


def calendar(events: Iterable[Event], *, name: str, method: str | None = None) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method is not None:
        cal.add("method", method)
    cal.add("x-wr-calname", name)
    for event in events:
        cal.add_component(event)
    cal.add_missing_timezones()
    return cal
