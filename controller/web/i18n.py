"""A small translation table: Vietnamese first, English with ?lang=en (remembered in a cookie)."""

from __future__ import annotations

from aiohttp import web

LANGS = ("vi", "en")
DEFAULT_LANG = "vi"
LANG_COOKIE = "lang"

TEXT: dict[str, tuple[str, str]] = {
    "app": ("Kết nối", "Ketnoi"),
    "signin": ("Đăng nhập", "Sign in"),
    "signout": ("Đăng xuất", "Sign out"),
    "username": ("Tên đăng nhập", "Username"),
    "password": ("Mật khẩu", "Password"),
    "bad_login": ("Tên đăng nhập hoặc mật khẩu không đúng.", "Wrong username or password."),
    "too_many": ("Quá nhiều lần thử. Vui lòng đợi một phút.", "Too many attempts. Please wait a minute."),
    "first_run": (
        "Chưa có tài khoản nào. Tạo quản trị viên đầu tiên trên máy chủ:",
        "There are no accounts yet. Create the first administrator on the server:",
    ),
    "first_run_after": (
        "Lệnh in ra mật khẩu ngẫu nhiên một lần duy nhất.",
        "The command prints a random password once.",
    ),
    "schools": ("Trường học", "Schools"),
    "school": ("Trường", "School"),
    "agent": ("Thiết bị biên", "Edge agent"),
    "agents": ("Thiết bị biên", "Edge agents"),
    "online": ("Trực tuyến", "Online"),
    "offline": ("Mất kết nối", "Offline"),
    "no_agent": ("Chưa đăng ký", "Not enrolled"),
    "last_seen": ("Lần cuối", "Last seen"),
    "version": ("Phiên bản", "Version"),
    "hostname": ("Tên máy", "Host name"),
    "cameras": ("Camera", "Cameras"),
    "camera": ("Camera", "Camera"),
    "state": ("Trạng thái", "State"),
    "reason": ("Lý do", "Reason"),
    "model": ("Kiểu máy", "Model"),
    "address": ("Địa chỉ", "Address"),
    "main": ("Luồng chính", "Main stream"),
    "sub": ("Luồng phụ", "Sub stream"),
    "approve": ("Phê duyệt", "Approve"),
    "approved": ("Đã duyệt", "Approved"),
    "revoke": ("Thu hồi", "Revoke"),
    "no_cameras": ("Chưa có camera nào.", "No cameras yet."),
    "no_schools": ("Không có trường nào trong phạm vi của bạn.", "No schools in your scope."),
    "make_code": ("Tạo mã đăng ký thiết bị", "Make an enrolment code"),
    "code_shown_once": ("Mã đăng ký (chỉ hiện một lần), hết hạn lúc", "Enrolment code (shown once), expires at"),
    "code_usage": (
        "Nhập mã này trên thiết bị biên, với địa chỉ máy chủ:",
        "Enter this code on the edge agent, with the controller address:",
    ),
    "time_zone_note": ("Giờ Việt Nam (Asia/Ho_Chi_Minh)", "Vietnam time (Asia/Ho_Chi_Minh)"),
    "language": ("English", "Tiếng Việt"),
    "never": ("chưa bao giờ", "never"),
    "found": ("Đã phát hiện", "Found"),
    "auth_failed": ("Sai thông tin đăng nhập", "Authentication failed"),
    "unreachable": ("Không truy cập được", "Unreachable"),
    "ready": ("Sẵn sàng", "Ready"),
    "pending_approval": ("Chờ phê duyệt", "Pending approval"),
    "back": ("Quay lại", "Back"),
    "error": ("Lỗi", "Error"),
    "forbidden": ("Bạn không có quyền xem trang này.", "You are not allowed to see this page."),
}


def language(request: web.Request) -> str:
    wanted = request.query.get("lang") or request.cookies.get(LANG_COOKIE) or DEFAULT_LANG
    return wanted if wanted in LANGS else DEFAULT_LANG


def translate(key: str, lang: str) -> str:
    pair = TEXT.get(key)
    if pair is None:
        return key
    return pair[LANGS.index(lang)] if lang in LANGS else pair[0]
