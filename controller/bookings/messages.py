"""The bookings service's messages in Vietnamese and English.

A `Text` is a `str` (its English wording, so the API's `{"error": ...}`, logs and tests read it as before) that
also keeps its catalogue key and parameters, so a page can show it in the reader's language
(`Text.render("vi")`). Errors raised with a `Text` (`BookingError`, `PolicyError`, `RecurrenceError`) keep it
as their first argument; `localized` picks the wording. Parameters are already formatted (names, local times).
"""

from __future__ import annotations

from typing import Any

CATALOG: dict[str, tuple[str, str]] = {
    # conflicts
    "clash": (
        "phòng {room!r} đã được đặt cho {title!r} (lịch {booking}) ngày {day} từ {start} đến {end} ({zone})",
        "room {room!r} is already booked by {title!r} (booking {booking}) on {day} from {start} to {end} ({zone})",
    ),
    "booked_moment_ago": (
        "một phòng vừa được đặt vào giờ này; hãy thử lại",
        "a room was booked for this time a moment ago; try again",
    ),
    # room policies and limits
    "end_after_start": ("giờ kết thúc phải sau giờ bắt đầu", "the end must be after the start"),
    "max_hours": ("một lịch dài tối đa {hours} giờ", "a booking lasts at most {hours} hours"),
    "room_inactive": (
        "phòng {room!r} đang ngừng sử dụng, không đặt được",
        "room {room!r} is not in use and cannot be booked",
    ),
    "room_capacity": (
        "phòng {room!r} chứa {capacity} người, không phải {attendees}",
        "room {room!r} holds {capacity} people, not {attendees}",
    ),
    "starts_in_past": ("có buổi bắt đầu trong quá khứ ({at})", "an occurrence starts in the past ({at})"),
    "booking_window": (
        "phòng {room!r} chỉ đặt trước tối đa {days} ngày (đến {horizon}); có buổi bắt đầu {at}",
        "room {room!r} can be booked at most {days} days ahead (until {horizon}); an occurrence starts {at}",
    ),
    "max_minutes": (
        "phòng {room!r} chỉ đặt tối đa {limit} phút mỗi lần, không phải {minutes}",
        "room {room!r} can be booked for at most {limit} minutes at a time, not {minutes}",
    ),
    # recurrence (what the booking form can reach)
    "too_many_occurrences": (
        "một chuỗi lịch có tối đa {limit} buổi",
        "a series may have at most {limit} occurrences",
    ),
    "series_too_long_until": (
        "một chuỗi lịch kéo dài tối đa {years} năm: ngày kết thúc lặp sau {limit}",
        "a series may run at most {years} years: UNTIL is after {limit}",
    ),
    "series_too_long": (
        "một chuỗi lịch kéo dài tối đa {years} năm: chuỗi này vượt quá {limit}",
        "a series may run at most {years} years: this one goes past {limit}",
    ),
    "recurrence_empty": (
        "kiểu lặp không cho buổi nào (xem lại ngày trong tuần, ngày kết thúc và các ngày bỏ qua)",
        "the recurrence leaves no occurrence (check BYDAY, UNTIL and the exception dates)",
    ),
    # rooms and units
    "no_such_unit": ("không có đơn vị này", "no such unit"),
    "no_such_room": ("không có phòng này", "no such room"),
    "no_such_rooms": ("không có phòng: {rooms}", "no such room: {rooms}"),
    "may_not_manage_unit_rooms": (
        "bạn không được quản lý phòng của đơn vị này",
        "you may not manage the rooms of this unit",
    ),
    "may_not_manage_room": ("bạn không được quản lý phòng này", "you may not manage this room"),
    "room_name_taken": ("đơn vị này đã có phòng tên {name!r}", "this unit already has a room named {name!r}"),
    "may_not_create_unit": ("bạn không được tạo đơn vị này ở đây", "you may not create this unit here"),
    "may_not_change_unit": ("bạn không được sửa đơn vị này", "you may not change this unit"),
    "unit_name": ("tên đơn vị dài từ 1 đến 200 ký tự", "a unit needs a name of 1 to 200 characters"),
    "only_schools_level": ("chỉ trường học mới có cấp học", "only schools have a school level"),
    "unknown_time_zone": (
        "múi giờ không hợp lệ {zone!r} (tên IANA, ví dụ Asia/Ho_Chi_Minh)",
        "unknown time zone {zone!r} (an IANA name such as Asia/Ho_Chi_Minh)",
    ),
    # bookings
    "room_twice": (
        "một phòng xuất hiện hai lần trong lịch (phòng chủ trì và phòng tham gia phải khác nhau)",
        "a room appears twice in the booking (host and participants are distinct rooms)",
    ),
    "may_not_book_room": (
        "bạn không được đặt phòng {room!r} (phòng {id})",
        "you may not book room {room!r} (room {id})",
    ),
    "no_such_booking": ("không có lịch này", "no such booking"),
    "booking_cancelled": ("lịch này đã bị hủy", "this booking is cancelled"),
    "may_not_change_booking": (
        "chỉ người tổ chức, cán bộ trường chủ trì hoặc cán bộ đặt lịch của Sở được sửa lịch này",
        "only the organizer, staff of the host school or a department booker may change this booking",
    ),
    "no_such_occurrence": ("lịch này không có buổi đó", "no such occurrence of this booking"),
    "occurrence_cancelled": ("buổi này đã bị hủy", "this occurrence is cancelled"),
    "started_no_move": (
        "buổi này đã bắt đầu, không dời được",
        "this occurrence has started already and cannot be moved",
    ),
    "started_no_cancel": (
        "buổi này đã bắt đầu, không hủy được",
        "this occurrence has started already and cannot be cancelled",
    ),
    "series_empty": (
        "sau thay đổi này lịch không còn buổi nào từ bây giờ (giờ bắt đầu trong quá khứ?): hãy hủy lịch",
        "after this change the booking has no occurrence from now on (a start in the past?): cancel it instead",
    ),
    "series_overlap": (
        "hai buổi của chuỗi lịch này sẽ trùng giờ nhau",
        "two occurrences of this series would overlap each other",
    ),
    "to_after_from": ("'to' phải sau 'from'", "'to' must be after 'from'"),
    "list_span": ("mỗi lần chỉ liệt kê tối đa {days} ngày", "list at most {days} days at a time"),
}


class Text(str):
    """A catalogued message: the English wording as a `str`, plus its key and parameters."""

    key: str
    params: dict[str, Any]

    def __new__(cls, key: str, **params: Any) -> Text:
        text = super().__new__(cls, CATALOG[key][1].format(**params))
        text.key = key
        text.params = params
        return text

    def render(self, lang: str) -> str:
        vietnamese, english = CATALOG[self.key]
        return (vietnamese if lang == "vi" else english).format(**self.params)


def localized(error: BaseException, lang: str) -> str:
    """An error's message in `lang` ("vi" or "en"); an uncatalogued one as it is (English)."""
    message = error.args[0] if error.args else ""
    if isinstance(message, Text):
        return message.render(lang)
    return str(message)
