"""The live-view pages' words, Vietnamese first, English with ?lang=en (kept apart from web/i18n.py's table so
the live view's pages and script share one list; `lt` in the templates)."""

from __future__ import annotations

from controller.web.i18n import LANGS

TEXT: dict[str, tuple[str, str]] = {
    "live_title": ("Xem lớp trực tiếp", "Live class view"),
    "live_intro": (
        "Bạn chỉ xem được camera của lớp con mình đang học, trong giờ nhà trường cho phép.",
        "You can watch the cameras of your child's class only, during the hours the school allows.",
    ),
    "class": ("Lớp", "Class"),
    "no_class": ("Chưa xếp lớp", "Not in a class"),
    "no_children": ("Chưa có trẻ nào được liên kết với tài khoản này.", "No child is linked to this account."),
    "no_cameras": ("Lớp này chưa có camera cho phụ huynh.", "This class has no camera for parents."),
    "watch": ("Xem trực tiếp", "Watch live"),
    "stop": ("Dừng xem", "Stop"),
    "open_now": ("Đang mở", "Open now"),
    "next_open": ("Mở lại lúc", "Opens again at"),
    "devices": ("Thiết bị đang xem", "Devices watching"),
    "connecting": ("Đang kết nối…", "Connecting…"),
    "live": ("Trực tiếp", "Live"),
    "stopped": ("Đã dừng", "Stopped"),
    "history": ("Lịch sử xem của bạn", "Your viewing history"),
    "view_log": ("Nhật ký xem", "View log"),
    "no_views": ("Chưa có lượt xem nào.", "No views yet."),
    "started": ("Bắt đầu", "Started"),
    "ended": ("Kết thúc", "Ended"),
    "end_reason": ("Lý do kết thúc", "Why it ended"),
    "still_open": ("Đang xem", "Still open"),
    "parent": ("Phụ huynh", "Parent"),
    "child": ("Trẻ", "Child"),
    "camera": ("Camera", "Camera"),
    "device": ("Thiết bị", "Device"),
    "address": ("Địa chỉ", "Address"),
    "needs_script": ("Trình phát cần bật JavaScript.", "The player needs JavaScript."),
    # settings
    "live_settings": ("Cài đặt xem trực tiếp", "Live view settings"),
    "assignment": ("Hiển thị cho", "Shown to"),
    "label": ("Tên hiển thị", "Label"),
    "not_shown": ("Không hiển thị", "Not shown"),
    "staff_only_option": (
        "Chỉ nhân viên (nhà vệ sinh, phòng thay đồ, bếp)",
        "Staff only (toilets, changing rooms, kitchen)",
    ),
    "save": ("Lưu", "Save"),
    "windows": ("Giờ xem (giờ của trường)", "Viewing hours (school's local time)"),
    "windows_note": (
        "Để trống một ngày nghĩa là đóng cả ngày. Ví dụ 07:30 – 16:30.",
        "Leave a day empty to keep it closed. For example 07:30 – 16:30.",
    ),
    "holidays": ("Ngày nghỉ", "Holidays"),
    "holidays_note": ("Mỗi dòng: YYYY-MM-DD tên ngày nghỉ", "One a line: YYYY-MM-DD name"),
    "consent_policy": ("Chính sách đồng ý", "Consent policy"),
    "all_children": (
        "Chỉ mở khi mọi trẻ trong lớp có sự đồng ý (mặc định)",
        "Open only when every child of the class has a consent (default)",
    ),
    "own_child": ("Chỉ cần sự đồng ý cho con của người xem", "The watching parent's own child must have a consent"),
    "none": ("Nhà trường thu thập đồng ý theo cách khác", "The school collects consent some other way"),
    "is_open_now": ("Hiện đang trong giờ xem.", "Cameras are open now."),
    "is_closed_now": ("Hiện ngoài giờ xem.", "Cameras are closed now."),
    "saved": ("Đã lưu.", "Saved."),
    "weekday_0": ("Thứ Hai", "Monday"),
    "weekday_1": ("Thứ Ba", "Tuesday"),
    "weekday_2": ("Thứ Tư", "Wednesday"),
    "weekday_3": ("Thứ Năm", "Thursday"),
    "weekday_4": ("Thứ Sáu", "Friday"),
    "weekday_5": ("Thứ Bảy", "Saturday"),
    "weekday_6": ("Chủ Nhật", "Sunday"),
    # refusals and endings (reason codes from controller/live)
    "unknown_camera": ("Không có camera này.", "No such camera."),
    "not_a_class_camera": ("Camera này chưa được gán cho lớp nào.", "This camera is not shown to any class."),
    "staff_only": ("Camera này chỉ dành cho nhân viên nhà trường.", "This camera is for school staff only."),
    "not_your_class": ("Con của bạn không học lớp có camera này.", "None of your children is in this camera's class."),
    "outside_window": ("Ngoài giờ xem của nhà trường.", "Outside the school's viewing hours."),
    "consent_missing": (
        "Lớp chưa có đủ sự đồng ý của các gia đình.",
        "Not every family of the class has given consent.",
    ),
    "device_limit": ("Bạn đang xem trên quá nhiều thiết bị cùng lúc.", "You are watching on too many devices at once."),
    "camera_unavailable": ("Camera tạm thời không hoạt động.", "The camera is not working right now."),
    "no_media_node": ("Máy chủ video đang bận, vui lòng thử lại sau.", "The video server is unavailable; try later."),
    "publish_failed": ("Trường chưa gửi được hình từ camera.", "The school could not send the camera's picture."),
    "viewer_left": ("Bạn đã đóng trình phát.", "You closed the player."),
    "never_played": ("Không kết nối được tới máy chủ video.", "Could not connect to the video server."),
    "replaced": ("Đã mở lại trên thiết bị này.", "Opened again on this device."),
    "stopped_by_viewer": ("Bạn đã dừng xem.", "You stopped watching."),
    "media_node_lost": ("Mất kết nối tới máy chủ video.", "The video server was lost."),
    "network": ("Lỗi mạng, vui lòng thử lại.", "Network error; try again."),
    "bad_device": ("Mã thiết bị không hợp lệ; hãy tải lại trang.", "This device's id is not valid; reload the page."),
}

SCRIPT_KEYS = (
    "connecting", "live", "stopped", "watch", "stop", "next_open", "unknown_camera", "not_a_class_camera",
    "staff_only", "not_your_class", "outside_window", "consent_missing", "device_limit", "camera_unavailable",
    "no_media_node", "publish_failed", "viewer_left", "never_played", "replaced", "stopped_by_viewer",
    "media_node_lost", "network", "bad_device",
)  # fmt: skip
"""What the page's script shows (status and reasons), handed to it in a data attribute."""


def live_text(key: str, lang: str) -> str:
    pair = TEXT.get(key)
    if pair is None:
        return key
    return pair[LANGS.index(lang)] if lang in LANGS else pair[0]


def script_texts(lang: str) -> dict[str, str]:
    return {key: live_text(key, lang) for key in SCRIPT_KEYS}
