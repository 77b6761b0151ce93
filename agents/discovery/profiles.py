"""Reading ONVIF media profiles and choosing the main (recorded) and sub (live view) streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from protocol.camera import StreamProfile

VIDEO_CODECS = frozenset({"H264", "H265", "HEVC"})


@dataclass(frozen=True)
class RawProfile:
    """A media profile as the device describes it, before its stream URI is known."""

    token: str
    name: str
    encoding: str
    width: int
    height: int
    fps: float | None
    bitrate_kbps: int | None


def _attr(obj: Any, *path: str) -> Any:
    for name in path:
        if obj is None:
            return None
        obj = getattr(obj, name, None)
    return obj


def _int(value: Any, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return number if 0 <= number <= high else 0


def read_profiles(response: Any, limit: int = 32) -> list[RawProfile]:
    """The profiles of a GetProfiles reply that carry a video encoder; odd values become 0 or None."""
    out: list[RawProfile] = []
    for profile in list(response or [])[:limit]:
        token = _attr(profile, "token")
        encoder = _attr(profile, "VideoEncoderConfiguration")
        if not token or encoder is None:
            continue
        fps = _attr(encoder, "RateControl", "FrameRateLimit")
        bitrate = _attr(encoder, "RateControl", "BitrateLimit")
        out.append(
            RawProfile(
                token=str(token)[:256],
                name=str(_attr(profile, "Name") or token)[:256],
                encoding=str(_attr(encoder, "Encoding") or "")[:256],
                width=_int(_attr(encoder, "Resolution", "Width"), 16384),
                height=_int(_attr(encoder, "Resolution", "Height"), 16384),
                fps=float(fps) if isinstance(fps, int | float) and 0 <= fps <= 1000 else None,
                bitrate_kbps=int(bitrate) if isinstance(bitrate, int) and 0 <= bitrate <= 1_000_000 else None,
            )
        )
    return out


Role = Literal["main", "sub", "other"]


def roles(profiles: list[RawProfile]) -> dict[str, Role]:
    """main: the largest H.264/H.265 profile; sub: the smallest other one; every other profile: other."""
    video = [p for p in profiles if p.encoding.upper() in VIDEO_CODECS]
    out: dict[str, Role] = {p.token: "other" for p in profiles}
    if not video:
        return out
    by_size = sorted(video, key=lambda p: (p.width * p.height, p.fps or 0))
    out[by_size[-1].token] = "main"
    if len(by_size) > 1:
        out[by_size[0].token] = "sub"
    return out


def to_stream_profiles(profiles: list[RawProfile], uris: dict[str, str | None]) -> list[StreamProfile]:
    assigned = roles(profiles)
    order = {"main": 0, "sub": 1, "other": 2}
    out = [
        StreamProfile(
            token=p.token,
            name=p.name,
            role=assigned[p.token],
            encoding=p.encoding,
            width=p.width,
            height=p.height,
            fps=p.fps,
            bitrate_kbps=p.bitrate_kbps,
            stream_uri=uris.get(p.token),
        )
        for p in profiles
    ]
    return sorted(out, key=lambda s: order[s.role])
