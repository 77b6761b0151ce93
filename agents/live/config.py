"""Configuration of live view at the agent: the `[live]` table of the agent's TOML file."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LiveConfig(BaseModel):
    """How the agent publishes cameras to media nodes when the controller asks. Times in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="accept publish_camera commands from the controller")
    max_publications: int = Field(default=16, ge=1, le=256, description="cameras published at once, at most")
    transport: Literal["tcp", "udp"] = Field(default="tcp", description="RTSP transport for live view")
    open_timeout_s: float = Field(default=10.0, ge=0.5, le=60, description="connecting to the camera")
    stall_timeout_s: float = Field(default=5.0, ge=0.5, le=30, description="no packet for this long: reconnect")
    reconnects: int = Field(
        default=3, ge=0, le=100, description="times the camera stream is reopened after it ends, before giving up"
    )
    connect_timeout_s: float = Field(
        default=15.0, ge=1, le=120, description="from the WHIP answer until the media node's connection is up"
    )
    http_timeout_s: float = Field(default=10.0, ge=1, le=60, description="one WHIP request")
    loopback_candidates: bool = Field(
        default=False, description="offer 127.0.0.1 as an ICE host candidate (the demo and tests on one machine)"
    )
