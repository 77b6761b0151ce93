"""What crosses between the controller, the media nodes, agents and browsers for live media.

Media tokens
  The controller signs a short-lived token for one node (`aud` = node id) and one purpose (`kind`):
  - `meeting`: a browser joins meeting room `room` as `role` (host, presenter, participant, observer, student);
  - `view`:    a parent's browser plays camera relay `room`, bound to `session` (the live-view session the
               controller audits) and `device`;
  - `publish`: an agent publishes camera relay `room` over WHIP; single use (the node remembers `jti`).
  HS256 under a key derived from the shared media secret for this use only; verification names the algorithm,
  requires every claim, and checks times against an injected clock. A node refuses a token for another node,
  another kind or another room, an expired or tampered one, and (for `publish` and `view`) a replayed `jti`.

Node -> controller
  `POST NODE_REPORT_PATH` (Bearer: `node_bearer(secret)`) with `NodeReport` every `interval_s`: the node's
  addresses, capacity, load and the live sessions it carries. The controller places rooms and relays on the least
  loaded node that reports in time, and ends the audit record of a view session that a node stops listing.

Controller -> node (the node's `control_url`, same Bearer)
  `POST CONTROL_CLOSE_PATH` with `CloseRequest`: close view sessions, meeting participants or whole rooms (a
  revoked grant, a removed participant, the end of a window); answered with `CloseResult`.

Relay names: a camera relay is `cam-<camera id>`, a meeting room `meet-<booking id>-<occurrence id>`.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict, Field

from common.clock import Clock

NODE_REPORT_PATH = "/api/media/nodes/report"
CONTROL_CLOSE_PATH = "/control/close"
WHIP_PATH = "/whip/{room}"
"""Agents POST an SDP offer here (RFC 9725); the answer's Location is the session resource to DELETE."""
WHEP_PATH = "/whep/{room}"
"""Viewers POST an SDP offer here (WHEP-style); the answer's Location is the session resource to DELETE."""
MEETING_WS_PATH = "/meet/{room}/ws"
"""Meeting signalling: a WebSocket; the first frame carries the token."""

ALGORITHM = "HS256"
ISSUER = "ketnoi-controller"
_TOKEN_KEY_PURPOSE = b"ketnoi media tokens v1"
_NODE_KEY_PURPOSE = b"ketnoi media nodes v1"


def camera_room(camera_id: int) -> str:
    return f"cam-{camera_id}"


def meeting_room(booking_id: int, occurrence_id: int) -> str:
    return f"meet-{booking_id}-{occurrence_id}"


class TokenKind(enum.StrEnum):
    MEETING = "meeting"
    VIEW = "view"
    PUBLISH = "publish"


class MeetingRole(enum.StrEnum):
    HOST = "host"
    PRESENTER = "presenter"
    PARTICIPANT = "participant"
    STUDENT = "student"
    """A participant in class mode: joins muted, may raise a hand."""
    OBSERVER = "observer"
    """Receives only and sends nothing; hidden from the class's grid."""


class TokenRefused(Exception):
    """A media token that must not be honoured; `reason` is one of: tampered, expired, not_yet_valid,
    wrong_node, wrong_kind, wrong_room, replayed."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class MediaClaims:
    kind: TokenKind
    node: str
    room: str
    subject: str
    """Who: `user:<id>`, `room:<id>` (a join link for a room), `agent:<id>`."""
    token_id: str
    expires: datetime
    name: str = ""
    """Display name in a meeting."""
    role: MeetingRole | None = None
    session: str | None = None
    """The controller's live-view session id (view tokens): what revocation and audit refer to."""
    device: str | None = None
    """The viewer's device id (view tokens)."""
    class_mode: bool = False


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, purpose, hashlib.sha256).digest()


def node_bearer(secret: bytes) -> str:
    """The bearer credential between the controller and every media node, derived from the shared secret."""
    return base64.urlsafe_b64encode(_derive(secret, _NODE_KEY_PURPOSE)).decode().rstrip("=")


def bearer_matches(header: str | None, secret: bytes) -> bool:
    """Whether an Authorization header carries `node_bearer(secret)`, compared in constant time."""
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].encode(), node_bearer(secret).encode())


class MediaTokens:
    """Signs (controller) and verifies (media node) media tokens under a key derived from the shared secret."""

    def __init__(self, secret: bytes, clock: Clock) -> None:
        if len(secret) < 16:
            raise ValueError("the media secret must be at least 16 bytes")
        self._key = _derive(secret, _TOKEN_KEY_PURPOSE)
        self._clock = clock

    def issue(
        self,
        *,
        kind: TokenKind,
        node: str,
        room: str,
        subject: str,
        ttl: timedelta,
        name: str = "",
        role: MeetingRole | None = None,
        session: str | None = None,
        device: str | None = None,
        class_mode: bool = False,
    ) -> str:
        now = self._clock.now()
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": node,
            "kind": kind.value,
            "room": room,
            "sub": subject,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        if name:
            claims["name"] = name[:80]
        if role is not None:
            claims["role"] = role.value
        if session is not None:
            claims["sid"] = session
        if device is not None:
            claims["dev"] = device
        if class_mode:
            claims["class"] = True
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str, *, node: str, kind: TokenKind, room: str | None = None) -> MediaClaims:
        """The claims, or `TokenRefused`. Replay (`jti` seen before) is the caller's check: see `ReplayGuard`."""
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "require": ["exp", "iat", "jti", "iss", "aud", "kind", "room", "sub"],
                },
            )
            claims = MediaClaims(
                kind=TokenKind(payload["kind"]),
                node=str(payload["aud"]),
                room=str(payload["room"]),
                subject=str(payload["sub"]),
                token_id=str(payload["jti"]),
                expires=datetime.fromtimestamp(int(payload["exp"]), UTC),
                name=str(payload.get("name", "")),
                role=MeetingRole(payload["role"]) if "role" in payload else None,
                session=str(payload["sid"]) if "sid" in payload else None,
                device=str(payload["dev"]) if "dev" in payload else None,
                class_mode=bool(payload.get("class", False)),
            )
        except (jwt.InvalidTokenError, KeyError, TypeError, ValueError) as exc:
            raise TokenRefused("tampered", "the token is damaged or was not made by the controller") from exc
        if claims.node != node:
            raise TokenRefused("wrong_node", "the token is for another media node")
        if claims.kind is not kind:
            raise TokenRefused("wrong_kind", f"the token is for {claims.kind.value}, not {kind.value}")
        if room is not None and claims.room != room:
            raise TokenRefused("wrong_room", "the token is for another room")
        if self._clock.now() >= claims.expires:
            raise TokenRefused("expired", "the token has expired")
        return claims


class ReplayGuard:
    """Remembers token ids until they expire, so a single-use token works once."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._seen: dict[str, datetime] = {}

    def use(self, claims: MediaClaims) -> None:
        """Mark the token used, or raise `TokenRefused("replayed")` if it was used before."""
        now = self._clock.now()
        if len(self._seen) > 1024:
            self._seen = {jti: exp for jti, exp in self._seen.items() if exp > now}
        if claims.token_id in self._seen:
            raise TokenRefused("replayed", "the token was already used")
        self._seen[claims.token_id] = claims.expires


def turn_credentials(secret: bytes, user: str, ttl: timedelta, clock: Clock) -> tuple[str, str]:
    """TURN REST API credentials (coturn `use-auth-secret`): username `<expiry>:<user>`, HMAC-SHA1 password."""
    expiry = int((clock.now() + ttl).timestamp())
    username = f"{expiry}:{user}"
    password = base64.b64encode(hmac.new(secret, username.encode(), hashlib.sha1).digest()).decode()
    return username, password


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IceServer(Message):
    """One entry of RTCConfiguration.iceServers, as browsers and aiortc take it."""

    urls: list[str] = Field(min_length=1, max_length=8)
    username: str | None = Field(default=None, max_length=256)
    credential: str | None = Field(default=None, max_length=256)


class NodeLoad(Message):
    rooms: int = Field(ge=0, description="meeting rooms open")
    relays: int = Field(ge=0, description="camera relays open")
    publishers: int = Field(ge=0, description="incoming streams (meeting publishers and camera publications)")
    subscribers: int = Field(ge=0, description="outgoing peer connections (participants and viewers)")
    streams_out: int = Field(ge=0, description="forwarded media streams going out")
    cpu: float = Field(ge=0, description="the node's CPU use in cores, over the last interval")


class NodeReport(Message):
    node_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    public_url: str = Field(max_length=512, description="base URL browsers and agents use (WHIP, WHEP, meetings)")
    control_url: str = Field(max_length=512, description="base URL the controller uses for control requests")
    version: str = Field(max_length=64)
    capacity_streams: int = Field(ge=1, description="forwarded streams the node accepts before it is full")
    load: NodeLoad
    view_sessions: list[str] = Field(default_factory=list, max_length=100_000)
    """Live-view session ids currently playing on the node."""
    meeting_rooms: list[str] = Field(default_factory=list, max_length=10_000)


class NodeReportReply(Message):
    interval_s: float = Field(gt=0)


class CloseRequest(Message):
    view_sessions: list[str] = Field(default_factory=list, max_length=10_000)
    participants: list[tuple[str, str]] = Field(default_factory=list, max_length=10_000)
    """(room, subject) pairs."""
    rooms: list[str] = Field(default_factory=list, max_length=10_000)
    reason: str = Field(default="", max_length=200)


class CloseResult(Message):
    closed: int = Field(ge=0)
