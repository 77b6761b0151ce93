"""WS-Security UsernameToken (PasswordDigest) as ONVIF cameras check it.

digest = Base64(SHA1(nonce + created + password)); `Created` must be within a tolerance of the camera's own
clock (which may be skewed), and a nonce is accepted once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from simulator.onvif.soap import NS

logger = logging.getLogger(__name__)

_USERNAME_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_DIGEST = _USERNAME_PROFILE + "#PasswordDigest"
"""The Type of a digest password (the name of a token type, not a password)."""
DEFAULT_TOLERANCE_S = 300.0
MAX_REMEMBERED_NONCES = 4096


class AuthError(Exception):
    """The request is not authorized; the message says why (for logs and tests, never sent verbatim)."""


class UsernameToken(BaseModel):
    """The fields of a wsse:UsernameToken, as read from the request header."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1, max_length=256)
    password: str = Field(max_length=256)
    password_type: str = Field(max_length=256)
    nonce: str = Field(max_length=256)
    created: str = Field(max_length=64)


def read_token(header: etree._Element | None) -> UsernameToken | None:
    """The UsernameToken in a SOAP header, or None when there is none."""
    if header is None:
        return None
    token = header.find(f"{{{NS['wsse']}}}Security/{{{NS['wsse']}}}UsernameToken")
    if token is None:
        return None

    def field(tag: str) -> etree._Element | None:
        return token.find(tag)

    password = field(f"{{{NS['wsse']}}}Password")
    return UsernameToken(
        username=_text(field(f"{{{NS['wsse']}}}Username")),
        password=_text(password),
        password_type=password.get("Type", "") if password is not None else "",
        nonce=_text(field(f"{{{NS['wsse']}}}Nonce")),
        created=_text(field(f"{{{NS['wsu']}}}Created")),
    )


def _text(node: etree._Element | None) -> str:
    return (node.text or "").strip() if node is not None else ""


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """Base64(SHA1(nonce + created + password)), as the UsernameToken profile defines it."""
    raw = hashlib.sha1(nonce + created.encode() + password.encode(), usedforsecurity=False).digest()
    return base64.b64encode(raw).decode("ascii")


class DigestVerifier:
    """Checks UsernameTokens for one camera against its credentials and its (possibly skewed) clock.

    `camera_time` is the camera's clock in POSIX seconds (true time plus any clock-offset quirk).
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        camera_time: Callable[[], float] = time.time,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
    ) -> None:
        self._username = username
        self._password = password
        self._camera_time = camera_time
        self._tolerance = tolerance_s
        self._seen: OrderedDict[str, float] = OrderedDict()

    def verify(self, token: UsernameToken | None) -> None:
        """Return if `token` is valid and fresh; raise AuthError otherwise."""
        if token is None:
            raise AuthError("no UsernameToken")
        if not hmac.compare_digest(token.username.encode(), self._username.encode()):
            raise AuthError("unknown user")
        if token.password_type and token.password_type != PASSWORD_DIGEST:
            raise AuthError("only PasswordDigest is accepted")
        try:
            nonce = base64.b64decode(token.nonce, validate=True)
        except (binascii.Error, ValueError):
            raise AuthError("nonce is not base64") from None
        if not nonce:
            raise AuthError("empty nonce")
        created = _parse_created(token.created)
        skew = created - self._camera_time()
        if abs(skew) > self._tolerance:
            raise AuthError(f"Created is {skew:+.0f} s from the camera's clock")
        expected = password_digest(nonce, token.created, self._password)
        if not hmac.compare_digest(expected.encode(), token.password.encode()):
            raise AuthError("wrong digest")
        self._remember(token.nonce)

    def _remember(self, nonce: str) -> None:
        now = self._camera_time()
        horizon = now - 2 * self._tolerance
        while self._seen and (next(iter(self._seen.values())) < horizon or len(self._seen) >= MAX_REMEMBERED_NONCES):
            self._seen.popitem(last=False)
        if nonce in self._seen:
            raise AuthError("nonce replayed")
        self._seen[nonce] = now


def _parse_created(value: str) -> float:
    try:
        created = datetime.fromisoformat(value)
    except ValueError:
        raise AuthError("Created is not an ISO 8601 time") from None
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created.timestamp()
