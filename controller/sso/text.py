"""The texts of the single sign-on pages (Vietnamese first, English with ?lang=en) and the page each failure
reason shows, with its status."""

from __future__ import annotations

TEXT: dict[str, tuple[str, str]] = {
    "title": ("Đăng nhập bằng tài khoản Sở", "Sign in with the Department account"),
    "not_configured": (
        "Đăng nhập bằng tài khoản Sở chưa được cấu hình.",
        "Sign-in with the Department account is not configured.",
    ),
    "provider_down": (
        "Không kết nối được với hệ thống đăng nhập của Sở. Vui lòng thử lại sau, hoặc đăng nhập bằng mật khẩu.",
        "The Department's sign-in service cannot be reached. Please try again later, or sign in with a password.",
    ),
    "state": (
        "Yêu cầu đăng nhập không hợp lệ (có thể được mở từ một trang khác). Vui lòng đăng nhập lại.",
        "This sign-in request is not valid (it may have come from another page). Please sign in again.",
    ),
    "expired": (
        "Yêu cầu đăng nhập đã hết hạn. Vui lòng đăng nhập lại.",
        "The sign-in request expired. Please sign in again.",
    ),
    "denied": (
        "Hệ thống đăng nhập của Sở đã không cho phép đăng nhập.",
        "The Department's sign-in service did not allow the sign-in.",
    ),
    "code_refused": (
        "Mã đăng nhập không còn hiệu lực (đã được dùng hoặc đã hết hạn). Vui lòng đăng nhập lại.",
        "The sign-in code is no longer valid (already used, or expired). Please sign in again.",
    ),
    "invalid_token": (
        "Thông tin đăng nhập nhận từ Sở không hợp lệ. Vui lòng đăng nhập lại hoặc báo quản trị viên.",
        "The sign-in answer from the Department is not valid. Please sign in again, or tell an administrator.",
    ),
    "unknown_user": (
        "Tài khoản Sở này chưa được liên kết với tài khoản nào trong hệ thống. Vui lòng liên hệ quản trị viên.",
        "This Department account is not linked to an account here. Please contact an administrator.",
    ),
    "no_role": (
        "Tài khoản Sở của bạn không thuộc nhóm nào được phép dùng hệ thống này.",
        "Your Department account is in no group allowed to use this system.",
    ),
    "disabled": ("Tài khoản này đã bị vô hiệu hoá.", "This account is disabled."),
    "bad_mapping": (
        "Cấu hình đăng nhập bằng tài khoản Sở có lỗi. Vui lòng báo quản trị viên.",
        "Single sign-on is misconfigured. Please tell an administrator.",
    ),
    "last_admin": (
        "Tài khoản Sở cho vai trò khác, nhưng đây là quản trị viên cuối cùng: vai trò không được đổi. Vui lòng báo "
        "quản trị viên hệ thống đăng nhập của Sở.",
        "The Department account gives another role, but this is the last administrator: the role is not changed. "
        "Please tell the Department's sign-in administrators.",
    ),
    "too_many": ("Quá nhiều lần thử. Vui lòng đợi một phút.", "Too many attempts. Please wait a minute."),
    "again": ("Đăng nhập lại", "Sign in again"),
    "link_title": ("Liên kết tài khoản Sở", "Link the Department account"),
    "already_linked": (
        "Tài khoản Sở này đã được liên kết với một tài khoản khác trong hệ thống. Vui lòng liên hệ quản trị viên.",
        "This Department account is already linked to another account here. Please contact an administrator.",
    ),
    "link_session": (
        "Phiên đăng nhập đã kết thúc hoặc thuộc về người khác. Vui lòng đăng nhập rồi liên kết lại.",
        "Your session ended or belongs to someone else. Please sign in and link again.",
    ),
    "back_to_account": ("Về trang tài khoản", "Back to my account"),
}
PAGE_OF_REASON = {
    "not_configured": ("not_configured", 404),
    "unreachable": ("provider_down", 502),
    "too_large": ("provider_down", 502),
    "malformed": ("provider_down", 502),
    "bad_discovery": ("provider_down", 502),
    "bad_jwks": ("provider_down", 502),
    "refused": ("code_refused", 400),
    "no_attempt": ("state", 400),
    "state": ("state", 400),
    "expired": ("expired", 400),
    "denied": ("denied", 403),
    "unknown_user": ("unknown_user", 403),
    "not_linked": ("unknown_user", 403),
    "bad_username": ("unknown_user", 403),
    "no_role": ("no_role", 403),
    "disabled": ("disabled", 403),
    "bad_mapping": ("bad_mapping", 403),
    "last_admin": ("last_admin", 409),
    "too_many": ("too_many", 429),
    "taken": ("already_linked", 409),
    "link_session": ("link_session", 403),
}


def text(key: str, lang: str) -> str:
    pair = TEXT[key]
    return pair[1] if lang == "en" else pair[0]
