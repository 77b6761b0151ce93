"""Configuration of the recorder: the `[recording]` table of the agent's TOML file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraRecording(_Strict):
    """Overrides for one camera (keyed by its endpoint reference in `RecordingConfig.cameras`)."""

    enabled: bool | None = Field(default=None, description="record this camera (default: the site's `enabled`)")
    transport: Literal["tcp", "udp"] | None = Field(default=None, description="RTSP transport for this camera")
    record_sub: bool | None = Field(default=None, description="also record this camera's sub-stream")
    segment_s: float | None = Field(default=None, ge=1, le=3600, description="segment length for this camera")


class RecordingConfig(_Strict):
    """Where and how cameras are recorded. Times in seconds."""

    enabled: bool = Field(default=True, description="record every ready camera's main stream")
    root: Path | None = Field(
        default=None, description="the recordings root (default: <state_dir>/recordings); one directory per camera"
    )
    segment_s: float = Field(default=60.0, ge=1, le=3600, description="segment length (each starts on a keyframe)")
    fragment_s: float = Field(
        default=1.0, gt=0, le=10, description="longest fragment: a crash loses at most the fragment being written"
    )
    transport: Literal["tcp", "udp"] = Field(default="tcp", description="RTSP transport")
    record_sub: bool = Field(default=False, description="also record the sub-streams (live-view profiles)")
    stall_timeout_s: float = Field(
        default=5.0, ge=0.5, le=10, description="no packet for this long on an open connection: stalled, reconnect"
    )
    open_timeout_s: float = Field(default=10.0, ge=0.5, le=60, description="connecting and DESCRIBE/SETUP/PLAY")
    reconnect_base_s: float = Field(default=0.5, gt=0, le=60, description="first reconnect delay (then doubled)")
    reconnect_cap_s: float = Field(default=60.0, gt=0, le=600, description="longest reconnect delay")
    max_drift_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="when stream time and the agent's monotonic clock part by more than this, re-anchor timestamps",
    )
    fsync: bool = Field(default=True, description="fsync each segment file once per fragment (power-loss safety)")
    cameras: dict[str, CameraRecording] = Field(
        default_factory=dict, max_length=1024, description="per-camera overrides keyed by endpoint reference"
    )
    api_token_file: Path | None = Field(
        default=None,
        description="file holding the bearer token of the local recordings API (default: <state_dir>/api-token, "
        "generated with mode 0600 at first start)",
    )
    export_max_s: float = Field(default=3600.0, ge=1, le=86_400, description="longest clip the API exports")
    query_max_s: float = Field(
        default=31 * 86_400.0, ge=60, le=366 * 86_400, description="longest range a segment or gap listing covers"
    )

    @model_validator(mode="after")
    def _bounds(self) -> RecordingConfig:
        if self.reconnect_cap_s < self.reconnect_base_s:
            raise ValueError("reconnect_cap_s must be at least reconnect_base_s")
        if self.fragment_s > self.segment_s:
            raise ValueError("fragment_s must not exceed segment_s")
        return self

    def root_for(self, state_dir: Path) -> Path:
        return self.root if self.root is not None else state_dir / "recordings"

    def token_file_for(self, state_dir: Path) -> Path:
        return self.api_token_file if self.api_token_file is not None else state_dir / "api-token"

    def for_camera(self, endpoint_ref: str) -> CameraRecording:
        return self.cameras.get(endpoint_ref, CameraRecording())
