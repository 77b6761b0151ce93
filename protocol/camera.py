"""A camera as the edge agent knows it: its discovery state, identity, profiles and stream URIs.

These objects leave the site (over the uplink to the controller) and so never carry a password or a URL
with credentials in it: `CameraReport` refuses both at validation time.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field


class CameraState(enum.StrEnum):
    """Where a discovered device stands. Every state comes with a human-readable reason."""

    FOUND = "found"
    """Answered a probe; not yet interrogated over ONVIF."""
    AUTH_FAILED = "auth_failed"
    """Refused the site's credentials (or the per-camera override)."""
    UNREACHABLE = "unreachable"
    """Did not answer, answered too slowly, or answered with something unusable."""
    READY = "ready"
    """Profiles, stream URIs and snapshot URI read: usable for recording and live view."""
    PENDING_APPROVAL = "pending_approval"
    """Outside the site's configured camera networks: never used until a technician approves it."""


def _no_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("a URL that leaves the site must not carry credentials")
    return url


CleanUrl = Annotated[str, Field(max_length=2048), AfterValidator(_no_credentials)]
Text = Annotated[str, Field(max_length=256)]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StreamProfile(Frozen):
    """One ONVIF media profile and its stream."""

    token: Text
    name: Text
    role: Literal["main", "sub", "other"] = Field(description="main: recorded; sub: live view for parents")
    encoding: Text = Field(description="H264, H265, JPEG, ... as the camera names it")
    width: int = Field(ge=0, le=16384)
    height: int = Field(ge=0, le=16384)
    fps: float | None = Field(default=None, ge=0, le=1000)
    bitrate_kbps: int | None = Field(default=None, ge=0, le=1_000_000)
    stream_uri: CleanUrl | None = None


class DeviceInfo(Frozen):
    manufacturer: Text = ""
    model: Text = ""
    firmware: Text = ""
    serial: Text = ""
    hardware_id: Text = ""


class CameraReport(Frozen):
    """What the agent knows of one device, keyed by its WS-Discovery endpoint reference."""

    endpoint_ref: Text = Field(description="stable identity from WS-Discovery, e.g. urn:uuid:...")
    address: Text = Field(description="IP address the device answered from")
    xaddrs: list[CleanUrl] = Field(default_factory=list, max_length=16)
    scopes: list[Text] = Field(default_factory=list, max_length=64)
    name: Text = Field(default="", description="from the onvif://www.onvif.org/name/ scope, if any")
    state: CameraState
    reason: Text = Field(description="why the device is in this state, for a technician")
    device: DeviceInfo | None = None
    clock_offset_s: float | None = Field(default=None, description="camera clock minus agent clock")
    profiles: list[StreamProfile] = Field(default_factory=list, max_length=32)
    snapshot_uri: CleanUrl | None = None
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    changed_at: AwareDatetime = Field(description="when state or reason last changed")
