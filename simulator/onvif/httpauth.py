"""HTTP Basic and Digest (RFC 7616, MD5, qop=auth) checking for the snapshot endpoint, as cameras do it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict

_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
MAX_NONCES = 1024


def _md5(value: str) -> str:
    return hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()


def parse_params(value: str) -> dict[str, str]:
    """The key=value pairs of a Digest Authorization header (quoted or bare values)."""
    return {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(value)}


class HttpAuthChecker:
    """Accepts Basic or Digest credentials for one user; issues Digest challenges."""

    def __init__(self, username: str, password: str, realm: str) -> None:
        self._username = username
        self._password = password
        self.realm = realm
        self._nonces: OrderedDict[str, None] = OrderedDict()

    def challenge(self) -> str:
        """A WWW-Authenticate header value with a fresh nonce."""
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = None
        while len(self._nonces) > MAX_NONCES:
            self._nonces.popitem(last=False)
        return f'Digest realm="{self.realm}", qop="auth", algorithm=MD5, nonce="{nonce}"'

    def check(self, method: str, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            return self._check_basic(value.strip())
        if scheme.lower() == "digest":
            return self._check_digest(method, parse_params(value))
        return False

    def _check_basic(self, value: str) -> bool:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        return bool(sep) and self._same(user, self._username) and self._same(password, self._password)

    def _check_digest(self, method: str, params: dict[str, str]) -> bool:
        nonce = params.get("nonce", "")
        if nonce not in self._nonces or not self._same(params.get("username", ""), self._username):
            return False
        if params.get("realm") != self.realm:
            return False
        ha1 = _md5(f"{self._username}:{self.realm}:{self._password}")
        ha2 = _md5(f"{method}:{params.get('uri', '')}")
        qop = params.get("qop")
        if qop == "auth":
            expected = _md5(f"{ha1}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}")
        elif qop is None:
            expected = _md5(f"{ha1}:{nonce}:{ha2}")
        else:
            return False
        return self._same(params.get("response", ""), expected)

    @staticmethod
    def _same(given: str, expected: str) -> bool:
        return hmac.compare_digest(given.encode(), expected.encode())
