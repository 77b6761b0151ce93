"""Join-link tokens: accepted only when signed by the derived key with HS256, within their time window, for
their booking; each refusal names its reason (no database)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from common.clock import ManualClock
from controller.calendar.joinlinks import JoinLinks, JoinRole, Reason, Refused, derive_key

SECRET = b"s" * 32
START = datetime(2026, 1, 6, 2, 0, tzinfo=UTC)
END = START + timedelta(hours=1)


def _links(clock: ManualClock) -> JoinLinks:
    return JoinLinks(SECRET, clock, early=timedelta(minutes=15), late=timedelta(minutes=10))


def _token(links: JoinLinks, booking_id: int = 7) -> str:
    return links.issue(
        booking_id=booking_id, occurrence_id=3, starts_at=START, ends_at=END, role=JoinRole.PRESENTER, room_id=11
    )


def _refused(links: JoinLinks, token: str, booking_id: int | None = None) -> Reason:
    with pytest.raises(Refused) as caught:
        links.verify(token, booking_id=booking_id)
    return caught.value.reason


def _segments(token: str) -> list[str]:
    return token.split(".")


def _encode(part: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _decode(segment: str) -> dict[str, object]:
    padded = segment + "=" * (-len(segment) % 4)
    value: dict[str, object] = json.loads(base64.urlsafe_b64decode(padded))
    return value


def test_a_valid_token_gives_its_claims_within_its_window() -> None:
    clock = ManualClock(START - timedelta(minutes=15))
    links = _links(clock)
    token = _token(links)
    claims = links.verify(token, booking_id=7)
    assert (claims.booking_id, claims.occurrence_id, claims.room_id, claims.user_id) == (7, 3, 11, None)
    assert claims.role is JoinRole.PRESENTER
    assert claims.not_before == START - timedelta(minutes=15) and claims.expires == END + timedelta(minutes=10)
    assert len(claims.token_id) == 32 and claims.token_id != links.verify(_token(links)).token_id
    # The key is derived for this use: the secret key itself does not verify.
    assert derive_key(SECRET) != SECRET
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})


async def test_expired_and_not_yet_valid_follow_the_injected_clock() -> None:
    clock = ManualClock(START - timedelta(minutes=16))
    links = _links(clock)
    token = _token(links)
    assert _refused(links, token) is Reason.NOT_YET_VALID
    await clock.advance(60)
    assert links.verify(token).booking_id == 7
    await clock.advance((END + timedelta(minutes=10) - clock.now()).total_seconds() - 1)
    assert links.verify(token).booking_id == 7
    await clock.advance(1)
    assert _refused(links, token) is Reason.EXPIRED


def test_tampered_payload_and_signature_are_refused() -> None:
    links = _links(ManualClock(START))
    header, payload, signature = _segments(_token(links))
    claims = _decode(payload)
    claims["role"] = "host"
    assert _refused(links, f"{header}.{_encode(claims)}.{signature}") is Reason.TAMPERED
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert _refused(links, f"{header}.{payload}.{flipped}") is Reason.TAMPERED
    assert _refused(links, "not-a-token") is Reason.TAMPERED


def test_alg_none_and_other_algorithms_are_refused() -> None:
    links = _links(ManualClock(START))
    _header, payload, _signature = _segments(_token(links))
    unsigned = f"{_encode({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    assert _refused(links, unsigned) is Reason.TAMPERED
    claims = _decode(payload)
    with pytest.warns(InsecureKeyLengthWarning):  # the 32-byte key is short for SHA-512: what is tested here
        hs512 = jwt.encode(claims, derive_key(SECRET), algorithm="HS512")
    assert _refused(links, hs512) is Reason.TAMPERED
    # The same claims with HS256 and the right key pass: the refusal above is the algorithm's.
    assert links.verify(jwt.encode(claims, derive_key(SECRET), algorithm="HS256")).booking_id == 7


def test_another_bookings_token_is_refused_as_wrong_booking() -> None:
    links = _links(ManualClock(START))
    assert _refused(links, _token(links, booking_id=8), booking_id=7) is Reason.WRONG_BOOKING
    assert links.verify(_token(links, booking_id=7), booking_id=7).booking_id == 7


def test_a_token_from_another_server_key_is_tampered() -> None:
    clock = ManualClock(START)
    other = JoinLinks(b"t" * 32, clock)
    assert _refused(_links(clock), _token(other)) is Reason.TAMPERED
