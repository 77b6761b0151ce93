"""Which streams are recorded, under which id, and the one place credentials go into an RTSP URL."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

from agents.discovery.credentials import Login
from agents.recording.config import RecordingConfig
from protocol.camera import CameraReport, CameraState

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SAFE_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,127}")
"""What a camera id looks like: it is a directory name under the recordings root and a path segment of the API."""
SUB_SUFFIX = ".sub"


def camera_id(endpoint_ref: str) -> str:
    """The uuid of a urn:uuid endpoint reference (lower case); a hash of anything else. Safe as a file name."""
    text = endpoint_ref.strip().lower().removeprefix("urn:uuid:")
    if _UUID.fullmatch(text):
        return text
    return "id-" + hashlib.sha256(endpoint_ref.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class StreamTarget:
    """One stream to record: the camera id (with `.sub` for a sub-stream), where to pull it, which login."""

    camera: str
    endpoint_ref: str
    address: str
    url: str
    """Without credentials (as the inventory holds it)."""
    transport: str
    segment_s: float
    login: Login | None = field(default=None, repr=False, compare=False)


def targets(report: CameraReport, config: RecordingConfig) -> list[StreamTarget]:
    """The streams of `report` to record now: none unless the camera is ready and recording is enabled."""
    override = config.for_camera(report.endpoint_ref)
    enabled = config.enabled if override.enabled is None else override.enabled
    if report.state is not CameraState.READY or not enabled:
        return []
    record_sub = config.record_sub if override.record_sub is None else override.record_sub
    transport = override.transport or config.transport
    segment_s = override.segment_s or config.segment_s
    base = camera_id(report.endpoint_ref)
    found: list[StreamTarget] = []
    for role, suffix in (("main", ""), ("sub", SUB_SUFFIX)):
        if role == "sub" and not record_sub:
            continue
        profile = next(
            (p for p in report.profiles if p.role == role and p.stream_uri and p.stream_uri.startswith("rtsp")),
            None,
        )
        if profile is not None and profile.stream_uri is not None:
            found.append(
                StreamTarget(
                    base + suffix, report.endpoint_ref, report.address, profile.stream_uri, transport, segment_s
                )
            )
    return found


def with_credentials(url: str, login: Login | None) -> str:
    """`url` with the login in it (URL-encoded). Only the session thread calls this; never log the result."""
    if login is None or not login.username:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(login.username, safe='')}:{quote(login.password, safe='')}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
