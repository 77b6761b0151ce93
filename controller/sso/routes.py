"""`GET /signin/sso` (to the provider) and `GET /signin/sso/callback` (back from it): both public pages.

The callback checks the attempt cookie and `state`, trades the code (with the PKCE verifier and the client
secret), validates the ID token, maps the person to a local user and starts a session exactly as a password
sign-in does (the old session ended, a new id, the same cookie, an audit entry `signin.sso`). Every failure is a
page in Vietnamese (English with ?lang=en) with a 4xx or 502, and an audit entry `signin.sso.failed`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from joserfc.jwk import KeySet

from common.config import ConfigError
from controller import audit, state
from controller.config import ControllerConfig
from controller.db.models import Role
from controller.security import sessions
from controller.security.access import TECHNICIANS, Kind, Routes, public
from controller.sso import flow, idtoken, users
from controller.sso.flow import AttemptError
from controller.sso.idtoken import IdTokenError
from controller.sso.provider import ClientCredentials, Provider, ProviderError
from controller.web import booking_pages
from controller.web.i18n import language

logger = logging.getLogger(__name__)

START_PATH = "/signin/sso"
CALLBACK_PATH = "/signin/sso/callback"
PROVIDER: web.AppKey[Provider] = web.AppKey("sso_provider", Provider)
CLIENT: web.AppKey[ClientCredentials] = web.AppKey("sso_client", ClientCredentials)

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
}
_PAGE_OF_REASON = {
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
}
_CALLBACK_IN_LOG = re.compile(re.escape(CALLBACK_PATH) + r"\?[^ \"]*")


def text(key: str, lang: str) -> str:
    pair = TEXT[key]
    return pair[1] if lang == "en" else pair[0]


class _RedactCallback(logging.Filter):
    """The access log line of a callback would carry the code and state: keep the path only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(
                _CALLBACK_IN_LOG.sub(CALLBACK_PATH + "?…", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _CALLBACK_IN_LOG.sub(CALLBACK_PATH + "?…", record.msg)
        return True


_REDACT = _RedactCallback()


def _error(request: web.Request, reason: str) -> web.Response:
    key, status = _PAGE_OF_REASON.get(reason, ("invalid_token", 403))
    lang = language(request)
    response = request.app[state.RENDERER].render(
        request, "sso_error.html", status=status, title=text("title", lang), message=text(key, lang),
        again=text("again", lang), reason=reason,
    )  # fmt: skip
    _forget_attempt(response, request.app[state.CONFIG])
    return response


def _forget_attempt(response: web.StreamResponse, config: ControllerConfig) -> None:
    """Delete the attempt cookie (with the flags it was set with: a __Host- cookie is only deleted when Secure)."""
    response.del_cookie(flow.cookie_name(config), path="/", secure=config.cookie_secure, httponly=True, samesite="Lax")


def _safe_next(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value[:512]


def redirect_uri(config: ControllerConfig) -> str:
    return f"{config.effective_public_url}{CALLBACK_PATH}"


async def start(request: web.Request) -> web.StreamResponse:
    """Send the browser to the Department's provider (authorization code flow with PKCE)."""
    app = request.app
    config = app[state.CONFIG]
    if not config.sso_enabled:
        return _error(request, "not_configured")
    try:
        metadata = await app[PROVIDER].metadata()
    except ProviderError as exc:
        return _error(request, exc.reason)
    attempt = flow.begin(app[state.SECRET_KEY], app[state.CLOCK].now(), _safe_next(request.query.get("next")))
    scopes = ["openid", *(s for s in config.sso_scopes if s != "openid")]
    query = urlencode({
        "response_type": "code",
        "client_id": config.sso_client_id,
        "redirect_uri": redirect_uri(config),
        "scope": " ".join(scopes),
        "state": attempt.state,
        "nonce": attempt.nonce,
        "code_challenge": attempt.challenge,
        "code_challenge_method": "S256",
    })  # fmt: skip
    separator = "&" if "?" in metadata.authorization_endpoint else "?"
    response = web.HTTPFound(f"{metadata.authorization_endpoint}{separator}{query}")
    response.set_cookie(
        flow.cookie_name(config),
        attempt.cookie(),
        max_age=int(flow.LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        secure=config.cookie_secure,
        samesite="Lax",
    )
    raise response


async def callback(request: web.Request) -> web.StreamResponse:
    """Back from the provider: check, trade the code, validate the ID token, map the user, start a session."""
    app = request.app
    config, now, address = app[state.CONFIG], app[state.CLOCK].now(), request.remote or "unknown"
    if not config.sso_enabled:
        return await start(request)
    if not app[state.LOGIN_LIMITER].allow(address):  # each callback may cost a call to the provider
        return _error(request, "too_many")
    try:
        attempt = flow.resume(app[state.SECRET_KEY], request.cookies.get(flow.cookie_name(config)), now)
    except AttemptError as exc:
        return await _failed(request, exc.reason)
    if not flow.state_matches(attempt, request.query.get("state")):
        return await _failed(request, "state")
    if "error" in request.query:
        return await _failed(request, "denied")
    code = request.query.get("code", "")
    if not code or len(code) > 2048:
        return await _failed(request, "state")
    try:
        claims = await _claims(app, config, code, attempt)
    except ProviderError as exc:
        return await _failed(request, exc.reason)
    except IdTokenError as exc:
        return await _failed(request, exc.reason)
    issuer = app[PROVIDER].issuer
    try:
        async with app[state.DB].begin() as session:
            user = await users.sign_in(session, config, claims, issuer=issuer, now=now, address=address)
            old = request.cookies.get(sessions.cookie_name(config))
            if old:
                previous = await sessions.resolve(session, old, now, config)
                if previous is not None:
                    await sessions.end(session, previous.session_id)
            token = await sessions.start(session, user, now, address)
            audit.record(session, at=now, actor=f"user:{user.username}", action="signin.sso", address=address,
                         details={"issuer": issuer, "role": user.role.value, "unit_id": user.unit_id})  # fmt: skip
            role = user.role
    except users.Refusal as exc:
        return await _failed(request, exc.reason, subject=str(claims.get("sub", "")))
    next_path = attempt.next_path
    if next_path == "/" and role not in TECHNICIANS:
        next_path = booking_pages.landing(Role(role))
    response = web.HTTPSeeOther(next_path)
    sessions.set_cookie(response, config, token)
    _forget_attempt(response, config)
    raise response


async def _claims(app: web.Application, config: ControllerConfig, code: str, attempt: flow.Attempt) -> dict[str, Any]:
    provider = app[PROVIDER]
    tokens = await provider.exchange(code, attempt.verifier, redirect_uri(config), app[CLIENT])
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise ProviderError("malformed", "no id_token")

    async def keys_of(refresh: bool) -> KeySet:
        return await provider.keys(refresh=refresh)

    claims = await idtoken.validate(
        id_token,
        keys_of=keys_of,
        issuer=(await provider.metadata()).issuer,  # exactly as the provider spells it (a trailing slash or not)
        client_id=config.sso_client_id,
        nonce=attempt.nonce,
        now=app[state.CLOCK].now(),
    )
    wanted = (config.sso_role_claim, config.sso_username_claim)
    access_token = tokens.get("access_token")
    if any(claim not in claims for claim in wanted) and isinstance(access_token, str):
        info = await provider.userinfo(access_token)
        if info and info.get("sub") != claims["sub"]:
            raise IdTokenError("userinfo_subject")
        claims = {**info, **claims}
    return claims


async def _failed(request: web.Request, reason: str, *, subject: str = "") -> web.Response:
    app = request.app
    logger.info("sso sign-in failed: %s", reason)
    async with app[state.DB].begin() as session:
        details = {"reason": reason} | ({"subject": subject} if subject else {})
        audit.record(session, at=app[state.CLOCK].now(), actor="anonymous", action="signin.sso.failed",
                     details=details, address=request.remote)  # fmt: skip
    return _error(request, reason)


def _read_secret(path: Path) -> str:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read sso_client_secret_file {path}: {exc.strerror}") from None
    if not secret:
        raise ConfigError(f"sso_client_secret_file {path} is empty")
    return secret


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    """The provider's HTTP client lives as long as the app."""
    config = app[state.CONFIG]
    connector = aiohttp.TCPConnector(limit=8)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
        app[PROVIDER] = Provider(config.sso_issuer, http, app[state.CLOCK], config.sso_timeout_s)
        yield


def setup(app: web.Application, routes: Routes) -> None:
    """Routes always (they say so when SSO is off); the client only when `sso_issuer` is set. Reads the secret."""
    config = app[state.CONFIG]
    if config.sso_enabled and config.sso_client_secret_file is not None:
        app[CLIENT] = ClientCredentials(
            config.sso_client_id, _read_secret(config.sso_client_secret_file), config.sso_client_auth
        )
        app.cleanup_ctx.append(_http_ctx)
    access = logging.getLogger("aiohttp.access")
    if _REDACT not in access.filters:
        access.addFilter(_REDACT)
    routes.add("GET", START_PATH, start, public(Kind.PAGE))
    routes.add("GET", CALLBACK_PATH, callback, public(Kind.PAGE))
