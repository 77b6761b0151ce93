"""Join links: HS256 JSON Web Tokens under a key derived from the controller's secret key for this use only.

Claims: `bid` (booking id), `occ` (occurrence id, or "series"), `room` or `user` (who joins), `role` (host,
presenter, participant, observer), `nbf` (start minus `early`), `exp` (end plus `late`), `iat` and `jti` (a
unique id). Verification names one algorithm (HS256), so `alg: none` and every other algorithm are refused, and
checks the times against the injected clock (PyJWT's own time checks are off: it reads the system clock).
Every refusal carries a `Reason`.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from common.clock import Clock

ALGORITHM = "HS256"
ISSUER = "ketnoi-join"
SERIES = "series"
_KEY_PURPOSE = b"ketnoi join links v1"


class JoinRole(enum.StrEnum):
    HOST = "host"
    PRESENTER = "presenter"
    PARTICIPANT = "participant"
    OBSERVER = "observer"


class Reason(enum.StrEnum):
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    TAMPERED = "tampered"
    WRONG_BOOKING = "wrong_booking"
    CANCELLED = "cancelled"
    """The token is good but its session was cancelled (the join page's check against the booking)."""


class Refused(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class JoinClaims:
    booking_id: int
    occurrence_id: int | None
    """None: the whole series."""
    room_id: int | None
    user_id: int | None
    role: JoinRole
    not_before: datetime
    expires: datetime
    token_id: str


def derive_key(secret_key: bytes) -> bytes:
    """HMAC-SHA256(secret key, purpose): the join-link key, useless for anything else the secret key signs."""
    return hmac.new(secret_key, _KEY_PURPOSE, hashlib.sha256).digest()


class JoinLinks:
    def __init__(
        self,
        secret_key: bytes,
        clock: Clock,
        *,
        early: timedelta = timedelta(minutes=30),
        late: timedelta = timedelta(minutes=30),
    ) -> None:
        self._key = derive_key(secret_key)
        self._clock = clock
        self.early = early
        self.late = late

    def issue(
        self,
        *,
        booking_id: int,
        occurrence_id: int | None,
        starts_at: datetime,
        ends_at: datetime,
        role: JoinRole,
        room_id: int | None = None,
        user_id: int | None = None,
    ) -> str:
        if (room_id is None) == (user_id is None):
            raise ValueError("a join link is for one room or one user")
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "bid": booking_id,
            "occ": SERIES if occurrence_id is None else occurrence_id,
            "role": role.value,
            "nbf": int((starts_at - self.early).timestamp()),
            "exp": int((ends_at + self.late).timestamp()),
            "iat": int(self._clock.now().timestamp()),
            "jti": uuid.uuid4().hex,
        }
        if room_id is not None:
            claims["room"] = room_id
        else:
            claims["user"] = user_id
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str, *, booking_id: int | None = None) -> JoinClaims:
        """The token's claims, or `Refused` with the reason; `booking_id`: the booking it must be for."""
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"verify_exp": False, "verify_nbf": False, "require": ["exp", "nbf", "jti", "iss"]},
            )
            claims = _claims(payload)
        except (jwt.InvalidTokenError, KeyError, TypeError, ValueError) as exc:
            raise Refused(Reason.TAMPERED, "the link is damaged or was not made by this server") from exc
        if booking_id is not None and claims.booking_id != booking_id:
            raise Refused(Reason.WRONG_BOOKING, "the link is for another booking")
        now = self._clock.now()
        if now < claims.not_before:
            raise Refused(Reason.NOT_YET_VALID, "the link is not valid yet")
        if now >= claims.expires:
            raise Refused(Reason.EXPIRED, "the link has expired")
        return claims


def _int_or_none(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


def _claims(payload: dict[str, Any]) -> JoinClaims:
    occurrence = payload["occ"]
    booking_id = _int_or_none(payload["bid"])
    if booking_id is None:
        raise TypeError("no booking")
    return JoinClaims(
        booking_id=booking_id,
        occurrence_id=None if occurrence == SERIES else _int_or_none(occurrence),
        room_id=_int_or_none(payload.get("room")),
        user_id=_int_or_none(payload.get("user")),
        role=JoinRole(payload["role"]),
        not_before=datetime.fromtimestamp(int(payload["nbf"]), UTC),
        expires=datetime.fromtimestamp(int(payload["exp"]), UTC),
        token_id=str(payload["jti"]),
    )
