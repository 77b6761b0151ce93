"""The browser's side of one sign-in attempt: a short-lived signed cookie from which `state`, `nonce` and the
PKCE verifier are derived.

The cookie holds a random seed, when the attempt began, where to go after it and, for an attempt started from the
account page to link the signed-in user's Department account, that user's id, signed with a key derived from
the server's secret key for this use alone. `state`, `nonce` and the verifier are HMACs of the seed, so they are
not in the cookie (the verifier never leaves the server but for the token call), nothing is stored server-side,
and any replica can finish the attempt. The callback deletes the cookie; the provider refuses a second use of the
code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.config import ControllerConfig

LIFETIME = timedelta(minutes=10)
_PURPOSE = b"ketnoi sso attempt v1"


def cookie_name(config: ControllerConfig) -> str:
    return "__Host-ketnoi_sso" if config.cookie_secure else "ketnoi_sso"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AttemptError(Exception):
    """The cookie is missing, forged or too old; `reason` is a fixed word."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Attempt:
    seed: str
    started: datetime
    next_path: str
    key: bytes
    link_user: int | None = None
    """Set when a signed-in user started the attempt to link their account (the callback links, not signs in)."""

    def _derive(self, what: bytes) -> str:
        return _b64(hmac.new(self.key, what + b"\0" + self.seed.encode(), hashlib.sha256).digest())

    @property
    def state(self) -> str:
        return self._derive(b"state")

    @property
    def nonce(self) -> str:
        return self._derive(b"nonce")

    @property
    def verifier(self) -> str:
        """43 characters of base64url (RFC 7636: 43-128)."""
        return self._derive(b"pkce")

    @property
    def challenge(self) -> str:
        return _b64(hashlib.sha256(self.verifier.encode("ascii")).digest())

    def cookie(self) -> str:
        fields: list[object] = [self.seed, int(self.started.timestamp()), self.next_path]
        if self.link_user is not None:
            fields.append(self.link_user)
        body = _b64(json.dumps(fields).encode())
        return f"{body}.{_b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())}"


def _key(secret_key: bytes) -> bytes:
    return hmac.new(secret_key, _PURPOSE, hashlib.sha256).digest()


def begin(secret_key: bytes, now: datetime, next_path: str, link_user: int | None = None) -> Attempt:
    return Attempt(secrets.token_urlsafe(32), now.replace(microsecond=0), next_path, _key(secret_key), link_user)


def resume(secret_key: bytes, cookie: str | None, now: datetime) -> Attempt:
    """The attempt a callback belongs to; AttemptError when the cookie is missing, forged or expired."""
    if not cookie:
        raise AttemptError("no_attempt")
    key = _key(secret_key)
    body, _, signature = cookie.partition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise AttemptError("no_attempt")
    try:
        seed, started, next_path, *rest = json.loads(_unb64(body))
        begun = datetime.fromtimestamp(int(started), tz=now.tzinfo)
    except (ValueError, TypeError, OverflowError):
        raise AttemptError("no_attempt") from None
    link_user = rest[0] if len(rest) == 1 else None
    if not isinstance(seed, str) or not isinstance(next_path, str) or len(rest) > 1:
        raise AttemptError("no_attempt")
    if rest and (not isinstance(link_user, int) or isinstance(link_user, bool)):
        raise AttemptError("no_attempt")
    if now - begun > LIFETIME or begun - now > timedelta(minutes=1):
        raise AttemptError("expired")
    return Attempt(seed, begun, next_path, key, link_user)


def state_matches(attempt: Attempt, state: str | None) -> bool:
    return state is not None and hmac.compare_digest(state.encode(), attempt.state.encode())
