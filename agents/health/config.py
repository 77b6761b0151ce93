"""Image health settings: the `[health]` table of the agent's configuration.

The defaults are calibrated on the simulator's moving pattern (tests/health/test_analysis.py prints the figures),
measured on the decoded keyframe's luma plane as it is (limited range, 16-235): its keyframes measure a brightness
ratio near 0.5, a contrast near 0.16, a sharpness (variance of the Laplacian at 640 pixels wide) of 330-375 and a
change of about 0.23 between samples; a 15x15 Gaussian blur of them measures about 17, a black or uniform frame
0 contrast and sharpness, the same frame again exactly 0 change.

Mind the simulator's loop: its picture repeats every 4 s (two 2 s GOPs), so samples taken an even number of GOPs
apart show the same keyframe and look frozen. The default interval (10 s, five GOPs) alternates between its two
keyframes; a keyframe arriving up to 0.5 s early still counts as due, so network jitter does not push samples to
12 s. Real cameras do not loop; for them any interval works.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HealthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="sample keyframes for image health and snapshots")
    interval_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="seconds between samples per camera (the first keyframe after it; 0: every keyframe)",
    )
    workers: int = Field(default=1, ge=1, le=16, description="threads that decode and measure samples")
    analysis_width: int = Field(default=640, ge=64, le=3840, description="frames are scaled to this width to measure")
    dark_below: float = Field(
        default=0.12, ge=0, le=1, description="dark or covered: mean luma below this share of full scale"
    )
    uniform_below: float = Field(
        default=0.02, ge=0, le=1, description="covered: luma standard deviation below this share of full scale"
    )
    blurred_below: float = Field(
        default=60.0, ge=0, description="blurred: variance of the Laplacian (at analysis_width) below this"
    )
    frozen_change_below: float = Field(
        default=0.002, ge=0, le=1, description="no change: mean absolute difference of 64x36 grey frames below this"
    )
    frozen_samples: int = Field(
        default=3, ge=1, le=100, description="frozen: this many successive samples without change"
    )
    snapshot_quality: int = Field(default=80, ge=10, le=100, description="JPEG quality of the per-camera snapshot")
    snapshot_interval_s: float = Field(
        default=60.0, ge=0, le=86_400, description="seconds between snapshot updates (from the samples taken)"
    )
