"""Random secrets and the hashes under which the controller stores them."""

from __future__ import annotations

import hashlib
import hmac
import secrets

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
"""Enrolment code letters: no 0/O, 1/I/L, so a code read over the phone is typed right."""
CODE_LENGTH = 10


def new_token() -> str:
    """A 32-byte random token, URL-safe (agent tokens, session ids)."""
    return secrets.token_urlsafe(32)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def new_code() -> str:
    """A one-time enrolment code of CODE_LENGTH letters (about 50 bits)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(code: str) -> str:
    """The code as stored: upper case, without the spaces and dashes people type."""
    return "".join(ch for ch in code.upper() if ch not in " -\t")


def display_code(code: str) -> str:
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def code_hash(key: bytes, code: str) -> str:
    """HMAC-SHA256 under the server key: a short code is not brute-forced from a leaked database alone."""
    return hmac.new(key, normalize_code(code).encode("utf-8"), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
