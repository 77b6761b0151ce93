"""ICE servers for a browser page or an agent: the configured TURN/STUN URLs with TURN REST credentials.

coturn's `use-auth-secret`: the username is `<expiry>:<who>` and the password an HMAC of it under the shared
secret, so the controller hands out credentials that expire without coturn keeping any state. With no URLs
configured the list is empty (loopback and LAN need none; tests always pass an explicit empty list).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from common.clock import Clock
from common.config import ConfigError
from protocol.media import IceServer, turn_credentials


def load_turn_secret(path: Path | None) -> bytes | None:
    """coturn's static-auth-secret from its file (text; surrounding whitespace dropped). Called before serving."""
    if path is None:
        return None
    try:
        raw = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the TURN secret file {path}: {exc.strerror}") from None
    if len(raw) < 16:
        raise ConfigError(f"the TURN secret in {path} is too short (need 16 characters)")
    return raw.encode("utf-8")


class IceServers:
    def __init__(self, urls: list[str], secret: bytes | None, ttl: timedelta, clock: Clock) -> None:
        self._turn = [u for u in urls if u.startswith(("turn:", "turns:"))]
        self._stun = [u for u in urls if u.startswith(("stun:", "stuns:"))]
        self._secret = secret
        self._ttl = ttl
        self._clock = clock

    def for_subject(self, subject: str) -> list[IceServer]:
        """What `subject` (`user:<id>`, `agent:<id>`) puts in RTCConfiguration.iceServers."""
        servers: list[IceServer] = []
        if self._stun:
            servers.append(IceServer(urls=self._stun[:8]))
        if self._turn and self._secret is not None:
            username, password = turn_credentials(self._secret, subject, self._ttl, self._clock)
            servers.append(IceServer(urls=self._turn[:8], username=username, credential=password))
        return servers
