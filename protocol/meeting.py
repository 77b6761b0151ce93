"""Meeting signalling between a browser (or a test peer) and a media node, over one WebSocket.

The page opens `MEETING_WS_PATH` (protocol.media) on the node the controller placed the session on; every frame is
one JSON object with a `type`, at most `MAX_FRAME_BYTES`. The first frame is `hello` with the meeting token.

Each participant has two peer connections, so that offers never cross (no glare):
- publish   the browser offers (its microphone, camera and screen tracks), the node answers;
- subscribe the node offers (one transceiver per "slot": audio from every publisher, video from at most
            `max_video` of them, re-pointed to the most recent speakers without renegotiation), the browser
            answers. `slots` says which participant each slot carries now.
aiortc gathers all candidates before it answers (no trickle), so each offer and answer is a complete SDP; a new
offer is sent whenever tracks are added (a participant starts publishing, shares a screen).

Browser -> node
  hello            first frame: the token (`MediaTokens`, kind meeting, for this node and room), and on a rejoin
                   the resume key of the last welcome
  publish_offer    an SDP offer for the publish connection and which of its m-lines is the camera or the screen
  subscribe_answer the answer to the node's last `subscribe_offer` (with its `version`)
  media_state      what the participant sends: microphone on, camera on, screen on
  hand             raise or lower a hand (class mode)
  host_action      host only: mute / remove / promote / allow_speak a participant; mute_all, lock, unlock, end
  leave            leave the meeting
Node -> browser
  welcome          accepted: your participant id, role, class mode, the session codec, `max_video`
  publish_answer   the SDP answer for the publish connection
  subscribe_offer  an SDP offer for the subscribe connection (`version` increases)
  slots            which participant and source each subscribe m-line carries now (mid -> slot)
  roster           who is present (observers only shown to hosts), with their state and raised hands
  speakers         participant ids speaking now, loudest first
  muted            the host muted you (audio stops being forwarded until you are allowed again)
  error            a message was refused (`fatal` closes the socket)
  closed           you were removed, the meeting ended, or your token was refused

Rejoining: a page whose WebSocket or ICE drops asks the controller for a fresh token and says hello again with
the key its welcome gave it. The node then takes it back as the same participant: an old connection that still
looks open is closed (`replaced`), and a participant whose socket went away is kept out of everyone's roster and
grid but resumable for `RESUME_S`. Reasons after which a page does not retry: removed, ended, locked, full,
replaced, left.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from protocol.media import IceServer, MeetingRole

MAX_FRAME_BYTES = 96 * 1024
"""Largest signalling frame either end accepts (an SDP with a dozen m-lines is about 20 KiB)."""
MAX_SDP_CHARS = 64 * 1024
MAX_TOKEN_CHARS = 4096
PARTICIPANT_ID = r"^[A-Za-z0-9_-]{1,32}$"
MID = r"^[A-Za-z0-9_-]{1,16}$"
RESUME_KEY = r"^[A-Za-z0-9_-]{16,64}$"
RESUME_S = 120.0
"""How long a participant whose connection dropped may come back as itself (`Hello.resume`)."""


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(enum.StrEnum):
    MICROPHONE = "microphone"
    CAMERA = "camera"
    SCREEN = "screen"


class Codec(enum.StrEnum):
    VP8 = "VP8"
    H264 = "H264"


class HostAction(enum.StrEnum):
    MUTE = "mute"
    """Stop forwarding the target's microphone until they are allowed to speak again."""
    ALLOW_SPEAK = "allow_speak"
    """Undo a mute (in class mode: let a student speak)."""
    REMOVE = "remove"
    PROMOTE = "promote"
    """Make the target a presenter."""
    MUTE_ALL = "mute_all"
    LOCK = "lock"
    UNLOCK = "unlock"
    END = "end"


TARGETED = frozenset({HostAction.MUTE, HostAction.ALLOW_SPEAK, HostAction.REMOVE, HostAction.PROMOTE})


class CloseReason(enum.StrEnum):
    REMOVED = "removed"
    ENDED = "ended"
    TOKEN = "token"  # noqa: S105 (a close reason, not a secret)
    LOCKED = "locked"
    FULL = "full"
    PROTOCOL = "protocol"
    LEFT = "left"
    REPLACED = "replaced"
    SHUTDOWN = "shutdown"
    """The media node is stopping (a restart or a deploy): rejoin, through the controller."""
    DROPPED = "dropped"
    """The socket went away without a `leave` (never sent: the node keeps the participant resumable)."""


# ----- browser -> node -----


class Hello(Message):
    type: Literal["hello"] = "hello"
    token: str = Field(min_length=16, max_length=MAX_TOKEN_CHARS)
    resume: str | None = Field(default=None, pattern=RESUME_KEY)
    """A rejoin: the `resume` key of this page's last `welcome`. Within `RESUME_S` of losing its connection (or
    while the old one still looks open) the participant comes back as itself: same id, role, host mute, hand."""


class TrackInfo(Message):
    mid: str = Field(pattern=MID)
    source: Source


class PublishOffer(Message):
    type: Literal["publish_offer"] = "publish_offer"
    sdp: str = Field(min_length=10, max_length=MAX_SDP_CHARS)
    tracks: list[TrackInfo] = Field(default_factory=list, max_length=3)


class SubscribeAnswer(Message):
    type: Literal["subscribe_answer"] = "subscribe_answer"
    version: int = Field(ge=1)
    sdp: str = Field(min_length=10, max_length=MAX_SDP_CHARS)


class MediaState(Message):
    type: Literal["media_state"] = "media_state"
    microphone: bool
    camera: bool
    screen: bool = False


class Hand(Message):
    type: Literal["hand"] = "hand"
    raised: bool


class HostCommand(Message):
    type: Literal["host_action"] = "host_action"
    action: HostAction
    target: str | None = Field(default=None, pattern=PARTICIPANT_ID)


class Leave(Message):
    type: Literal["leave"] = "leave"


ClientMessage = Annotated[
    Hello | PublishOffer | SubscribeAnswer | MediaState | Hand | HostCommand | Leave, Field(discriminator="type")
]
CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# ----- node -> browser -----


class Welcome(Message):
    type: Literal["welcome"] = "welcome"
    participant: str
    name: str
    role: MeetingRole
    class_mode: bool
    codec: Codec
    max_video: int
    may_publish: bool
    """False for observers: they open no publish connection."""
    muted_by_host: bool
    """Students in class mode join muted."""
    resume: str
    """The key to send in a rejoin's `hello` (known to this page only)."""
    resumed: bool = False
    """This join resumed an earlier one (the same participant id, role and host mute)."""
    hand: bool = False


class PublishAnswer(Message):
    type: Literal["publish_answer"] = "publish_answer"
    sdp: str


class SubscribeOffer(Message):
    type: Literal["subscribe_offer"] = "subscribe_offer"
    version: int
    sdp: str


class Slot(Message):
    participant: str | None
    source: Source | None


class Slots(Message):
    type: Literal["slots"] = "slots"
    slots: dict[str, Slot]
    """mid -> what it carries now (participant None: idle)."""


class Person(Message):
    id: str
    name: str
    role: MeetingRole
    microphone: bool
    camera: bool
    screen: bool
    hand: bool
    muted_by_host: bool


class Roster(Message):
    type: Literal["roster"] = "roster"
    participants: list[Person]
    locked: bool


class Speakers(Message):
    type: Literal["speakers"] = "speakers"
    ids: list[str]


class Muted(Message):
    type: Literal["muted"] = "muted"
    muted: bool
    """True: the host muted you; False: you may speak again."""


class RoleChanged(Message):
    type: Literal["role"] = "role"
    role: MeetingRole


class Error(Message):
    type: Literal["error"] = "error"
    code: str
    message: str
    fatal: bool = False


class Closed(Message):
    type: Literal["closed"] = "closed"
    reason: CloseReason
    message: str = ""


ServerMessage = Annotated[
    Welcome | PublishAnswer | SubscribeOffer | Slots | Roster | Speakers | Muted | RoleChanged | Error | Closed,
    Field(discriminator="type"),
]
SERVER_MESSAGE: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


class JoinInfo(Message):
    """What the controller hands the page (`POST /api/meetings/join`): where and how to connect."""

    ws_url: str
    token: str
    ice_servers: list[IceServer]
    role: MeetingRole
    class_mode: bool
    expires_in_s: int
