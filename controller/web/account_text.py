"""Page wording for the account page and single sign-on links (a user's own, and on the user administration
pages), Vietnamese first; merged into `controller.web.i18n.TEXT` so templates use `t(key)` as usual."""

from __future__ import annotations

TEXT: dict[str, tuple[str, str]] = {
    "my_account": ("Tài khoản của tôi", "My account"),
    "sign_in_ways": ("Cách đăng nhập", "Ways to sign in"),
    "has_password": ("Mật khẩu: có", "Password: set"),
    "no_password": ("Mật khẩu: chưa có", "Password: none"),
    "sso_account": ("Tài khoản Sở", "Department account"),
    "sso_accounts": ("Tài khoản Sở đã liên kết", "Linked Department accounts"),
    "sso_none": ("Chưa liên kết tài khoản Sở nào.", "No Department account is linked."),
    "sso_subject": ("Mã người dùng tại Sở", "User id at the Department"),
    "sso_issuer": ("Hệ thống đăng nhập", "Sign-in service"),
    "sso_pending": ("(điền khi đăng nhập lần tới)", "(filled in at the next sign-in)"),
    "linked_at": ("Liên kết lúc", "Linked at"),
    "linked_by": ("Người liên kết", "Linked by"),
    "sso_link": ("Liên kết tài khoản Sở", "Link my Department account"),
    "sso_link_help": (
        "Bạn sẽ được chuyển tới trang đăng nhập của Sở; sau khi đăng nhập, tài khoản Sở được liên kết với tài khoản "
        "này và bạn có thể đăng nhập bằng tài khoản Sở.",
        "You are sent to the Department's sign-in page; once you sign in there, that account is linked to this one "
        "and you can sign in with it.",
    ),
    "sso_unlink": ("Bỏ liên kết", "Unlink"),
    "sso_done_linked": ("Đã liên kết tài khoản Sở.", "The Department account is linked."),
    "sso_done_unlinked": ("Đã bỏ liên kết tài khoản Sở.", "The Department account is unlinked."),
    "sso_last_method": (
        "Không thể bỏ liên kết: đây là cách đăng nhập duy nhất của tài khoản (chưa có mật khẩu). Hãy nhờ quản trị "
        "viên đặt mật khẩu trước.",
        "This link cannot be removed: it is the account's only way to sign in (it has no password). Ask an "
        "administrator for a password first.",
    ),
    "sso_admin_unlink_note": (
        "Bỏ liên kết sẽ kết thúc các phiên đăng nhập của người dùng này.",
        "Unlinking ends this user's sessions.",
    ),
    "sso_admin_no_way_in": (
        "Tài khoản này không còn mật khẩu hay liên kết nào: hãy đặt lại mật khẩu để người dùng đăng nhập được.",
        "This account has neither a password nor a link: reset the password so that the user can sign in.",
    ),
}
