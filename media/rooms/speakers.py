"""Who is speaking, from the audio level each Opus packet carries (RFC 6464, `ssrc-audio-level`).

aiortc negotiates the `urn:ietf:params:rtp-hdrext:ssrc-audio-level` header extension for audio and parses it into
`RtpPacket.extensions.audio_level` as `(voice, level)` with level in -dBov (0 loudest, 127 silence). Browsers
fill it on every packet, so the node learns who speaks without decoding anything. A participant speaks while a
short moving average of the level stays above a threshold; `order()` ranks publishers by when they last spoke,
which is what "video from the most recent speakers" needs.
"""

from __future__ import annotations

from dataclasses import dataclass

SPEAKING_DBOV = 50
"""A level under 50 -dBov (louder than -50 dBov) counts as speech."""
ALPHA = 0.2
"""Weight of a new packet in the moving average (packets come every 20 ms: about 100 ms of memory)."""
HOLD_S = 1.0
"""A participant still counts as speaking this long after the level last crossed the threshold."""


@dataclass
class _Level:
    average: float = 127.0
    last_spoke: float = float("-inf")


class SpeakerTracker:
    def __init__(self) -> None:
        self._levels: dict[str, _Level] = {}

    def observe(self, participant: str, level_dbov: int, now: float) -> None:
        """One packet's level (0 loudest .. 127 silence)."""
        entry = self._levels.setdefault(participant, _Level())
        entry.average += ALPHA * (min(max(level_dbov, 0), 127) - entry.average)
        if entry.average < SPEAKING_DBOV:
            entry.last_spoke = now

    def forget(self, participant: str) -> None:
        self._levels.pop(participant, None)

    def speaking(self, now: float) -> list[str]:
        """Participants speaking now, loudest first."""
        live = [(entry.average, pid) for pid, entry in self._levels.items() if now - entry.last_spoke <= HOLD_S]
        return [pid for _avg, pid in sorted(live)]

    def last_spoke(self, participant: str) -> float:
        entry = self._levels.get(participant)
        return entry.last_spoke if entry else float("-inf")

    def order(self, participants: list[str]) -> list[str]:
        """`participants` ranked by how recently they spoke (never-spoken keep their given order, last)."""
        indexed = list(enumerate(participants))
        indexed.sort(key=lambda item: (-self.last_spoke(item[1]), item[0]))
        return [pid for _i, pid in indexed]
