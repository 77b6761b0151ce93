"""The bearer token of the agent's local recordings API: read from a file, generated (mode 0600) if absent."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from common.logs import SECRETS

MIN_LENGTH = 16


class TokenError(Exception):
    """The token file cannot be read or holds something too short to be a token."""


def load_or_create_token(path: Path) -> str:
    """The token in `path` (its first line); a new random one written there with mode 0600 if the file is absent.

    The token is registered with the log filter so that no log line can carry it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise TokenError(f"cannot read the API token file {path}: {exc.strerror}") from None
        token = lines[0].strip() if lines else ""
        if len(token) < MIN_LENGTH:
            raise TokenError(f"the API token in {path} is shorter than {MIN_LENGTH} characters") from None
    else:
        token = secrets.token_urlsafe(32)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
    SECRETS.add(token)
    return token


def matches(expected: str, authorization: str | None) -> bool:
    """True if the Authorization header is `Bearer <expected>` (compared in constant time)."""
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), expected.encode("utf-8"))
