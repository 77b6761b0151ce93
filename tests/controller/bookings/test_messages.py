"""The service's messages in Vietnamese and English: the catalogue is complete, the API keeps its English
wording, and the booking form shows a refusal in the reader's language."""

from __future__ import annotations

import re
import string

from controller.bookings.drafts import Conflict
from controller.bookings.messages import CATALOG, Text, localized
from tests.controller.bookings.conftest import Site, as_user
from tests.controller.conftest import ORIGIN, Client


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_each_message_has_both_languages_with_the_same_parameters() -> None:
    for key, (vietnamese, english) in CATALOG.items():
        assert vietnamese and english and vietnamese != english, key
        assert _fields(vietnamese) == _fields(english), key


def test_a_text_is_its_english_wording_and_renders_in_vietnamese() -> None:
    text = Text("room_capacity", room="Phòng A", capacity=30, attendees=40)
    assert text == "room 'Phòng A' holds 30 people, not 40"
    assert text.render("vi") == "phòng 'Phòng A' chứa 30 người, không phải 40"
    error = Conflict(text)
    assert str(error) == text and localized(error, "vi").startswith("phòng 'Phòng A' chứa")
    assert localized(Conflict("plain words"), "vi") == "plain words"


async def test_a_clash_is_english_in_the_api_and_vietnamese_on_the_form(client: Client, site: Site) -> None:
    booker = await as_user(client, site.booker)
    body = {
        "title": "Họp đầu tuần",
        "mode": "meeting",
        "host_room": site.room,
        "start": "2026-01-06T09:00:00+07:00",
        "end": "2026-01-06T10:00:00+07:00",
    }
    status, _ = await booker.send("POST", "/api/bookings", body)
    assert status == 201
    status, answer = await booker.send("POST", "/api/bookings", {**body, "title": "Trùng"})
    assert status == 409 and answer["error"].startswith(f"room {'Phòng họp A'!r} is already booked by 'Họp đầu tuần'")

    form = {
        "csrf_token": booker.token,
        "title": "Trùng giờ",
        "agenda": "",
        "mode": "meeting",
        "host_room": str(site.room),
        "date": "2026-01-06",
        "start_time": "09:30",
        "end_time": "10:30",
        "repeat": "none",
        "count": "",
        "until": "",
    }
    for lang, expected in (("vi", "đã được đặt cho 'Họp đầu tuần'"), ("en", "is already booked by 'Họp đầu tuần'")):
        response = await client.post(f"/bookings?lang={lang}", data=form, headers=ORIGIN)
        page = await response.text()
        alert = re.search(r'<p class="error" role="alert" id="form-error">(.*?)</p>', page, re.S)
        assert response.status == 409 and alert is not None
        assert expected in alert.group(1).replace("&#39;", "'"), alert.group(1)
