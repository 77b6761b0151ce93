"""Media tokens: what a node honours and every way it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from common.clock import ManualClock
from protocol.media import (
    MediaTokens,
    MeetingRole,
    ReplayGuard,
    TokenKind,
    TokenRefused,
    bearer_matches,
    node_bearer,
    turn_credentials,
)

SECRET = b"a media secret of enough length"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 24, 7, 0, tzinfo=UTC))


def test_round_trip_carries_every_claim(clock: ManualClock) -> None:
    tokens = MediaTokens(SECRET, clock)
    token = tokens.issue(
        kind=TokenKind.MEETING,
        node="n1",
        room="meet-1-2",
        subject="user:7",
        ttl=timedelta(minutes=2),
        name="Cô Lan",
        role=MeetingRole.HOST,
        class_mode=True,
    )
    claims = tokens.verify(token, node="n1", kind=TokenKind.MEETING, room="meet-1-2")
    assert (claims.subject, claims.name, claims.role, claims.class_mode) == ("user:7", "Cô Lan", MeetingRole.HOST, True)


@pytest.mark.parametrize(
    ("node", "kind", "room", "reason"),
    [
        ("n2", TokenKind.VIEW, "cam-1", "wrong_node"),
        ("n1", TokenKind.PUBLISH, "cam-1", "wrong_kind"),
        ("n1", TokenKind.VIEW, "cam-2", "wrong_room"),
    ],
)
def test_refuses_other_node_kind_or_room(
    clock: ManualClock, node: str, kind: TokenKind, room: str, reason: str
) -> None:
    tokens = MediaTokens(SECRET, clock)
    token = tokens.issue(kind=TokenKind.VIEW, node="n1", room="cam-1", subject="user:1", ttl=timedelta(seconds=60))
    with pytest.raises(TokenRefused) as refused:
        tokens.verify(token, node=node, kind=kind, room=room)
    assert refused.value.reason == reason


async def test_refuses_expired_tampered_and_foreign(clock: ManualClock) -> None:
    tokens = MediaTokens(SECRET, clock)
    token = tokens.issue(kind=TokenKind.VIEW, node="n1", room="cam-1", subject="user:1", ttl=timedelta(seconds=60))
    head, body, sig = token.split(".")
    for bad, reason in [
        (f"{head}.{body}.{sig[:-2]}AA", "tampered"),
        (
            MediaTokens(b"another secret, just as long", clock).issue(
                kind=TokenKind.VIEW, node="n1", room="cam-1", subject="user:1", ttl=timedelta(seconds=60)
            ),
            "tampered",
        ),
        (jwt.encode({"kind": "view"}, "k" * 32, algorithm="HS256"), "tampered"),
    ]:
        with pytest.raises(TokenRefused) as refused:
            tokens.verify(bad, node="n1", kind=TokenKind.VIEW)
        assert refused.value.reason == reason
    await clock.advance(61)
    with pytest.raises(TokenRefused) as refused:
        tokens.verify(token, node="n1", kind=TokenKind.VIEW)
    assert refused.value.reason == "expired"


def test_replay_guard_honours_a_token_once(clock: ManualClock) -> None:
    tokens = MediaTokens(SECRET, clock)
    guard = ReplayGuard(clock)
    token = tokens.issue(kind=TokenKind.PUBLISH, node="n1", room="cam-1", subject="agent:1", ttl=timedelta(seconds=60))
    guard.use(tokens.verify(token, node="n1", kind=TokenKind.PUBLISH))
    with pytest.raises(TokenRefused) as refused:
        guard.use(tokens.verify(token, node="n1", kind=TokenKind.PUBLISH))
    assert refused.value.reason == "replayed"


def test_node_bearer_and_turn_credentials(clock: ManualClock) -> None:
    assert bearer_matches(f"Bearer {node_bearer(SECRET)}", SECRET)
    assert not bearer_matches(f"Bearer {node_bearer(b'another secret, just as long')}", SECRET)
    assert not bearer_matches(None, SECRET)
    username, password = turn_credentials(b"turn secret", "user:1", timedelta(hours=1), clock)
    assert username == f"{int(clock.now().timestamp()) + 3600}:user:1"
    # coturn's check: base64(HMAC-SHA1(secret, username)), here recomputed independently
    import base64
    import hashlib
    import hmac

    assert password == base64.b64encode(hmac.new(b"turn secret", username.encode(), hashlib.sha1).digest()).decode()
