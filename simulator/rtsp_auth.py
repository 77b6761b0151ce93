"""RTSP authentication as cameras do it: HTTP Digest (RFC 2617, MD5, optional qop=auth) and Basic."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))')


def _md5(text: str) -> str:
    # MD5 because RFC 2617 Digest and every camera client use it; this is protocol compatibility, not security.
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def parse_digest(value: str) -> dict[str, str]:
    """The parameters of a `Digest ...` credentials header value (keys lower-cased)."""
    return {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(value)}


class RtspAuth:
    """Checks a request's Authorization header against one username and password."""

    def __init__(self, username: str, password: str, *, realm: str, enabled: bool = True) -> None:
        self._username = username
        self._password = password
        self.realm = realm
        self.enabled = enabled
        self.nonce = secrets.token_hex(16)
        """One nonce per server run: clients reuse it on every request of their connection."""

    def challenge(self) -> list[tuple[str, str]]:
        """Headers for a 401: Digest first (clients pick the strongest they support), then Basic."""
        return [
            ("WWW-Authenticate", f'Digest realm="{self.realm}", nonce="{self.nonce}", algorithm=MD5'),
            ("WWW-Authenticate", f'Basic realm="{self.realm}"'),
        ]

    def check(self, method: str, authorization: str | None) -> bool:
        if not self.enabled:
            return True
        if not authorization:
            return False
        scheme, _, rest = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            return self._check_basic(rest.strip())
        if scheme == "digest":
            return self._check_digest(method, parse_digest(rest))
        return False

    def _check_basic(self, token: str) -> bool:
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, sep, password = decoded.partition(":")
        return bool(sep) & _same(username, self._username) & _same(password, self._password)

    def _check_digest(self, method: str, params: dict[str, str]) -> bool:
        username, uri, response = params.get("username"), params.get("uri"), params.get("response")
        if username is None or uri is None or response is None:
            return False
        if params.get("realm") != self.realm or params.get("nonce") != self.nonce:
            return False
        if params.get("algorithm", "MD5").upper() != "MD5":
            return False
        ha1 = _md5(f"{username}:{self.realm}:{self._password}")
        ha2 = _md5(f"{method}:{uri}")
        qop = params.get("qop")
        if qop is None:
            expected = _md5(f"{ha1}:{self.nonce}:{ha2}")
        elif qop == "auth":
            nc, cnonce = params.get("nc", ""), params.get("cnonce", "")
            expected = _md5(f"{ha1}:{self.nonce}:{nc}:{cnonce}:{qop}:{ha2}")
        else:
            return False
        return _same(username, self._username) & _same(response.lower(), expected)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
