"""The meeting page's words, Vietnamese first and English (`?lang=en`); the page's script gets them as JSON."""

from __future__ import annotations

TEXTS: dict[str, tuple[str, str]] = {
    "title": ("Phòng họp trực tuyến", "Online meeting"),
    "class_title": ("Lớp học trực tuyến", "Online class"),
    "when": ("Thời gian", "When"),
    "room": ("Phòng", "Room"),
    "role": ("Vai trò", "Role"),
    "your_name": ("Tên hiển thị (không bắt buộc)", "Display name (optional)"),
    "join": ("Vào phòng", "Join"),
    "joining": ("Đang kết nối…", "Connecting…"),
    "present": ("Người tham dự", "Present"),
    "speaking": ("đang nói", "speaking"),
    "hand": ("giơ tay", "hand raised"),
    "raise_hand": ("Giơ tay", "Raise hand"),
    "lower_hand": ("Hạ tay", "Lower hand"),
    "mic_on": ("Bật micro", "Unmute"),
    "mic_off": ("Tắt micro", "Mute"),
    "cam_on": ("Bật camera", "Camera on"),
    "cam_off": ("Tắt camera", "Camera off"),
    "share": ("Chia sẻ màn hình", "Share screen"),
    "stop_share": ("Dừng chia sẻ", "Stop sharing"),
    "leave": ("Rời phòng", "Leave"),
    "microphone": ("Micro", "Microphone"),
    "camera": ("Camera", "Camera"),
    "host_controls": ("Điều khiển của chủ trì", "Host controls"),
    "mute": ("Tắt tiếng", "Mute"),
    "remove": ("Mời ra", "Remove"),
    "promote": ("Cho trình bày", "Make presenter"),
    "allow_speak": ("Cho phát biểu", "Allow to speak"),
    "mute_all": ("Tắt tiếng tất cả", "Mute everyone"),
    "lock": ("Khóa phòng", "Lock"),
    "unlock": ("Mở khóa phòng", "Unlock"),
    "end_all": ("Kết thúc cho mọi người", "End for everyone"),
    "muted_by_host": ("Chủ trì đã tắt tiếng của bạn.", "The host muted you."),
    "class_muted": (
        "Bạn đang ở chế độ nghe. Hãy giơ tay để xin phát biểu.",
        "You are listening. Raise your hand to speak.",
    ),
    "unmuted_by_host": ("Bạn được phép phát biểu.", "You may speak."),
    "closed_removed": ("Chủ trì đã mời bạn ra khỏi phòng.", "The host removed you from the meeting."),
    "closed_ended": ("Buổi họp đã kết thúc.", "The meeting has ended."),
    "closed_locked": ("Chủ trì đã khóa phòng.", "The host has locked the meeting."),
    "closed_full": ("Phòng đã đủ người.", "The meeting is full."),
    "closed_token": ("Phiên vào phòng không hợp lệ hoặc đã hết hạn.", "The entry pass was refused or expired."),
    "closed_protocol": ("Kết nối bị đóng do lỗi.", "The connection was closed after an error."),
    "closed_left": ("Bạn đã rời phòng.", "You left the meeting."),
    "closed_replaced": ("Bạn đã vào phòng ở nơi khác.", "You joined from somewhere else."),
    "closed_gave_up": (
        "Không kết nối lại được với phòng họp. Hãy kiểm tra mạng rồi bấm “Vào lại”.",
        "Could not reconnect to the meeting. Check the network, then press “Join again”.",
    ),
    "reconnecting": ("Mất kết nối, đang kết nối lại…", "Connection lost, reconnecting…"),
    "reconnected": ("Đã kết nối lại.", "Reconnected."),
    "refused": ("Không vào được phòng:", "Could not join:"),
    "too_early": ("Phòng chưa mở. Buổi bắt đầu lúc", "Not open yet. The session starts at"),
    "over": ("Buổi đã kết thúc.", "The session is over."),
    "no_node": (
        "Chưa có máy chủ truyền hình nào sẵn sàng. Hãy thử lại sau một phút.",
        "No media server is available now. Try again in a minute.",
    ),
    "no_codec": (
        "Trình duyệt này không gửi hoặc không nhận được hình theo chuẩn của buổi họp. Hãy dùng Chrome, Edge hoặc "
        "Chromium bản mới",
        "This browser cannot send or receive video in the format this meeting uses. Use a recent Chrome, Edge or "
        "Chromium",
    ),
    "no_devices": ("Không mở được camera hoặc micro:", "Could not open the camera or microphone:"),
    "observer_note": ("Bạn đang dự giờ: chỉ xem và nghe.", "You are observing: you watch and listen only."),
    "you": ("bạn", "you"),
    "locked_badge": ("Đã khóa", "Locked"),
    "rejoin": ("Vào lại", "Join again"),
    "role_host": ("Chủ trì", "Host"),
    "role_presenter": ("Người trình bày", "Presenter"),
    "role_participant": ("Người tham dự", "Participant"),
    "role_student": ("Học sinh", "Student"),
    "role_observer": ("Người dự giờ", "Observer"),
    "language": ("English", "Tiếng Việt"),
    "time_zone_note": ("Giờ Việt Nam (Asia/Ho_Chi_Minh)", "Vietnam time (Asia/Ho_Chi_Minh)"),
}


def page_texts(lang: str) -> dict[str, str]:
    index = 1 if lang == "en" else 0
    return {key: pair[index] for key, pair in TEXTS.items()}
