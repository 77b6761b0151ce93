"""The media profiles a simulated camera offers: the RTSP side's, so GetProfiles and the streams agree."""

from __future__ import annotations

from simulator.video import PROFILES, ProfileSpec

MediaProfile = ProfileSpec
"""What GetProfiles reports for one profile: token, name, size, frame rate, bitrate, GOP and RTSP path."""

__all__ = ["PROFILES", "MediaProfile", "find"]


def find(token: str) -> MediaProfile | None:
    return next((p for p in PROFILES if p.token == token), None)
