"""Keeping secrets out of logs, errors and API output.

Camera passwords must never appear in a log line, raw or URL-encoded, including when a library echoes a URL
with credentials in it. `strip_credentials` removes userinfo from URLs; `SecretFilter` is a logging filter
that replaces registered secrets (and their URL-encoded forms) in every record that passes through a handler.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]*@")


def strip_credentials(url: str) -> str:
    """The URL without any user:password@ part (left as is when it does not parse)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(r"\g<scheme>", url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def scrub_urls(text: str) -> str:
    """Every URL in `text` with its credentials removed."""
    return _USERINFO.sub(r"\g<scheme>", text)


def secret_forms(secret: str) -> set[str]:
    """The forms in which a secret can leak: raw and URL-encoded (both quoting styles)."""
    return {form for form in (secret, quote(secret, safe=""), quote_plus(secret)) if form}


class SecretFilter(logging.Filter):
    """Replaces every registered secret (raw or URL-encoded) and URL userinfo in log records."""

    MASK = "***"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._forms: set[str] = set()

    def add(self, secret: str) -> None:
        if len(secret) < 3:
            # Masking one or two characters would mangle every log line and protects nothing.
            return
        with self._lock:
            self._forms |= secret_forms(secret)

    def scrub(self, text: str) -> str:
        text = scrub_urls(text)
        with self._lock:
            forms = sorted(self._forms, key=len, reverse=True)
        for form in forms:
            text = text.replace(form, self.MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.scrub(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True
