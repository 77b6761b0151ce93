"""`GET /signin/sso` (to the provider) and `GET /signin/sso/callback` (back from it): both public pages; and
`POST /account/sso/link`, a signed-in user's way to the provider to link their Department account.

The callback checks the attempt cookie and `state`, trades the code (with the PKCE verifier and the client
secret), validates the ID token, then either maps the person to a local user and starts a session through
`controller.security.signin`, as a password sign-in does (audit `signin.sso`), or, for an attempt begun from the
account page, links the person to the user who began it if that user is still the one signed in (audit
`sso.link`; a person linked to someone else is refused). Every failure is a page in Vietnamese (English with
?lang=en) with a 4xx or 502, and an audit entry `signin.sso.failed` (`sso.link.failed` when linking).
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
from controller.db.models import Role, User
from controller.security import sessions, signin
from controller.security.access import Kind, Policy, Routes, principal_of, public
from controller.sso import flow, idtoken, links, text, users
from controller.sso.flow import AttemptError
from controller.sso.idtoken import IdTokenError
from controller.sso.provider import ClientCredentials, Provider, ProviderError
from controller.web.i18n import language

logger = logging.getLogger(__name__)

START_PATH = "/signin/sso"
CALLBACK_PATH = "/signin/sso/callback"
LINK_PATH = "/account/sso/link"
ACCOUNT_PATH = "/account"
PROVIDER: web.AppKey[Provider] = web.AppKey("sso_provider", Provider)
CLIENT: web.AppKey[ClientCredentials] = web.AppKey("sso_client", ClientCredentials)

_CALLBACK_IN_LOG = re.compile(re.escape(CALLBACK_PATH) + r"\?[^ \"]*")


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


def _error(request: web.Request, reason: str, *, linking: bool = False) -> web.Response:
    key, status = text.PAGE_OF_REASON.get(reason, ("invalid_token", 403))
    lang = language(request)
    response = request.app[state.RENDERER].render(
        request, "sso_error.html", status=status, title=text.text("link_title" if linking else "title", lang),
        message=text.text(key, lang), again=text.text("back_to_account" if linking else "again", lang),
        again_href=ACCOUNT_PATH if linking else "/signin", reason=reason,
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
    return await _to_provider(request, _safe_next(request.query.get("next")), link_user=None)


async def start_link(request: web.Request) -> web.StreamResponse:
    """Send a signed-in user to the Department's provider to link their account to this one."""
    return await _to_provider(request, ACCOUNT_PATH, link_user=principal_of(request).user_id)


async def _to_provider(request: web.Request, next_path: str, *, link_user: int | None) -> web.StreamResponse:
    app = request.app
    config = app[state.CONFIG]
    linking = link_user is not None
    if not config.sso_enabled:
        return _error(request, "not_configured", linking=linking)
    try:
        metadata = await app[PROVIDER].metadata()
    except ProviderError as exc:
        return _error(request, exc.reason, linking=linking)
    attempt = flow.begin(app[state.SECRET_KEY], app[state.CLOCK].now(), next_path, link_user)
    scopes = ["openid", *(s for s in config.sso_scopes if s != "openid")]
    query = {
        "response_type": "code",
        "client_id": config.sso_client_id,
        "redirect_uri": redirect_uri(config),
        "scope": " ".join(scopes),
        "state": attempt.state,
        "nonce": attempt.nonce,
        "code_challenge": attempt.challenge,
        "code_challenge_method": "S256",
    }
    if linking:
        query["prompt"] = "login"  # the person says at the provider which account to link, even if signed in there
    separator = "&" if "?" in metadata.authorization_endpoint else "?"
    response = web.HTTPFound(f"{metadata.authorization_endpoint}{separator}{urlencode(query)}")
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
    """Back from the provider: check, trade the code, validate the ID token, then sign in or link."""
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
    linking = attempt.link_user is not None
    if not flow.state_matches(attempt, request.query.get("state")):
        return await _failed(request, "state", linking=linking)
    if "error" in request.query:
        return await _failed(request, "denied", linking=linking)
    code = request.query.get("code", "")
    if not code or len(code) > 2048:
        return await _failed(request, "state", linking=linking)
    try:
        claims = await _claims(app, config, code, attempt)
    except (ProviderError, IdTokenError) as exc:
        return await _failed(request, exc.reason, linking=linking)
    if attempt.link_user is not None:
        return await _link(request, attempt.link_user, str(claims["sub"]))
    issuer = app[PROVIDER].issuer
    try:
        async with app[state.DB].begin() as session:
            user = await users.sign_in(session, config, claims, issuer=issuer, now=now, address=address)
            details = {"issuer": issuer, "role": user.role.value, "unit_id": user.unit_id}
            token = await signin.start(session, request, user, now=now, action="signin.sso", details=details)
            role = user.role
    except users.Refusal as exc:
        return await _failed(request, exc.reason, subject=str(claims.get("sub", "")))
    response = signin.redirect(request, token, attempt.next_path, Role(role))
    _forget_attempt(response, config)
    raise response


async def _link(request: web.Request, user_id: int, subject: str) -> web.StreamResponse:
    """Link the person to the user who began the attempt, if they are still the one signed in."""
    app = request.app
    config, now, issuer = app[state.CONFIG], app[state.CLOCK].now(), app[PROVIDER].issuer
    cookie = request.cookies.get(sessions.cookie_name(config))
    reason, actor = "link_session", "anonymous"
    async with app[state.DB].begin() as session:
        principal = await sessions.resolve(session, cookie, now, config) if cookie else None
        user = await session.get(User, user_id) if principal is not None and principal.user_id == user_id else None
        if principal is not None and user is not None:
            actor = principal.actor
            try:
                await links.link(session, user, issuer, subject, actor=actor, now=now, address=request.remote)
                reason = ""
            except links.LinkError as exc:
                reason = exc.reason
    if reason:
        return await _failed(request, reason, subject=subject, linking=True, actor=actor)
    response = web.HTTPSeeOther(f"{ACCOUNT_PATH}?done=linked")
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
    missing = users.claim_at(claims, config.sso_role_claim) is None or config.sso_username_claim not in claims
    access_token = tokens.get("access_token")
    if missing and isinstance(access_token, str):
        info = await provider.userinfo(access_token)
        if info and info.get("sub") != claims["sub"]:
            raise IdTokenError("userinfo_subject")
        claims = {**info, **claims}
    return claims


async def _failed(
    request: web.Request, reason: str, *, subject: str = "", linking: bool = False, actor: str = "anonymous"
) -> web.Response:
    app = request.app
    logger.info("sso %s failed: %s", "link" if linking else "sign-in", reason)
    async with app[state.DB].begin() as session:
        details = {"reason": reason} | ({"subject": subject} if subject else {})
        audit.record(session, at=app[state.CLOCK].now(), actor=actor,
                     action="sso.link.failed" if linking else "signin.sso.failed", details=details,
                     address=request.remote)  # fmt: skip
    return _error(request, reason, linking=linking)


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
    routes.add("POST", LINK_PATH, start_link, Policy(frozenset(Role), Kind.PAGE))
