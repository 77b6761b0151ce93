"""The media plane of one meeting room as the signalling layer sees it: feeds in, sinks out, re-pointing.

`media.rooms.forward.ForwardingPlane` implements it on the shared forwarding core (`media.forwarding`,
`rtc.aiortc_adapter`); the signalling (`media.rooms.session`) only ever talks to this interface, so the rules
and the negotiation are tested without media and the media path is tested without a browser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpTransceiver

from media.rooms.slots import Feed

LevelCallback = Callable[[str, int], None]
"""(participant id, audio level in -dBov) for every audio packet a publisher sends."""


class Sink(Protocol):
    """One outgoing m-line of a subscriber, fed from whichever feed it points at."""

    @property
    def feed(self) -> Feed | None: ...

    def point(self, feed: Feed | None) -> None:
        """Carry `feed` from now on (video waits for its next keyframe and asks for one); None: send nothing."""
        ...

    def close(self) -> None: ...


class Plane(Protocol):
    def new_peer(self) -> RTCPeerConnection:
        """A peer connection with the node's ICE servers (and loopback candidates when configured)."""
        ...

    def prepare_publish(self, pc: RTCPeerConnection) -> None:
        """Before answering a publisher: restrict video to the session codec (and audio to Opus)."""
        ...

    def publish(self, feed: Feed, pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
        """A publisher's remote track became `feed`: take its encoded frames before any decoding (call it in
        `pc.on("track")`)."""
        ...

    def unpublish(self, feed: Feed) -> None: ...

    def add_sink(self, pc: RTCPeerConnection, kind: str) -> tuple[RTCRtpTransceiver, Sink]:
        """A new send-only m-line on a subscriber's connection, in the session codec, pointing at nothing."""
        ...

    def close(self) -> None: ...
