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
    # people and administration (issue #3)
    "users": ("Người dùng", "Users"),
    "new_user": ("Thêm người dùng", "New user"),
    "user_created": ("Đã tạo người dùng", "User created"),
    "password_shown_once": (
        "Mật khẩu đầu tiên (chỉ hiện một lần, hãy chuyển cho người dùng ngay):",
        "First password (shown once: hand it to the user now):",
    ),
    "search": ("Tìm", "Search"),
    "display_name": ("Họ tên", "Full name"),
    "role": ("Vai trò", "Role"),
    "unit": ("Đơn vị", "Unit"),
    "disabled": ("Đã khóa", "Disabled"),
    "active": ("Đang hoạt động", "Active"),
    "no_users": ("Không có người dùng nào.", "No users."),
    "create": ("Tạo", "Create"),
    "save": ("Lưu", "Save"),
    "change_role": ("Đổi vai trò và phạm vi", "Change role and scope"),
    "reset_password": ("Đặt lại mật khẩu", "Reset password"),
    "enable": ("Mở khóa", "Enable"),
    "disable": ("Khóa tài khoản", "Disable"),
    "created_at": ("Tạo lúc", "Created"),
    "role_admin": ("Quản trị viên", "Administrator"),
    "role_department_booker": ("Cán bộ đặt lịch của Sở", "Department booker"),
    "role_district_technician": ("Kỹ thuật viên Phòng GD", "District technician"),
    "role_school_staff": ("Cán bộ nhà trường", "School staff"),
    "role_teacher": ("Giáo viên", "Teacher"),
    "role_parent": ("Phụ huynh", "Parent"),
    "kind_department": ("Sở", "Department"),
    "kind_district": ("Phòng GD", "District office"),
    "kind_school": ("Trường", "School"),
    "audit_log": ("Nhật ký kiểm tra", "Audit log"),
    "actor": ("Người thực hiện", "Actor"),
    "action": ("Hành động", "Action"),
    "from_date": ("Từ ngày", "From"),
    "to_date": ("Đến ngày", "To"),
    "filter": ("Lọc", "Filter"),
    "time": ("Thời gian", "Time"),
    "target": ("Đối tượng", "Target"),
    "details": ("Chi tiết", "Details"),
    "no_entries": ("Không có mục nào.", "No entries."),
    "older": ("Cũ hơn", "Older"),
    "roster_import": ("Nhập danh sách", "Roster import"),
    "import_help": (
        "Tệp CSV (UTF-8) hoặc XLSX, dòng đầu là tên cột. Các loại và cột:",
        "A CSV (UTF-8) or XLSX file with a header row. Kinds and columns:",
    ),
    "optional": ("không bắt buộc", "optional"),
    "import_limits": ("Giới hạn trên trang này:", "Limits on this page:"),
    "rows": ("dòng", "rows"),
    "row": ("Dòng", "Row"),
    "created": ("Tạo mới", "Created"),
    "updated": ("Cập nhật", "Updated"),
    "unchanged": ("Không đổi", "Unchanged"),
    "bad_rows": ("Dòng lỗi", "Bad rows"),
    "applied": ("Đã áp dụng", "Applied"),
    "not_applied": ("Chưa áp dụng: sửa các dòng lỗi", "Not applied: fix the bad rows"),
    "dry_run": ("Chạy thử", "Dry run"),
    "apply": ("Áp dụng", "Apply"),
    "file": ("Tệp", "File"),
    "kind": ("Loại", "Kind"),
    "guess_kind": ("Tự nhận biết", "Guess from the columns"),
    "api_tokens": ("Mã API", "API tokens"),
    "token_shown_once": (
        "Mã API (chỉ hiện một lần, hãy lưu ngay). Gửi trong tiêu đề:",
        "API token (shown once: store it now). Send it in the header:",
    ),
    "name": ("Tên", "Name"),
    "expires_at": ("Hết hạn", "Expires"),
    "last_used": ("Dùng lần cuối", "Last used"),
    "no_tokens": ("Chưa có mã API nào.", "No API tokens."),
    "days_valid": ("Số ngày hiệu lực", "Days valid"),
}


def language(request: web.Request) -> str:
    wanted = request.query.get("lang") or request.cookies.get(LANG_COOKIE) or DEFAULT_LANG
    return wanted if wanted in LANGS else DEFAULT_LANG


def translate(key: str, lang: str) -> str:
    pair = TEXT.get(key)
    if pair is None:
        return key
    return pair[LANGS.index(lang)] if lang in LANGS else pair[0]
