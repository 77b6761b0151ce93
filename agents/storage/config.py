"""Configuration of retention and the free-space floor: the `[retention]` table of the agent's TOML file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

MIB = 1024 * 1024


def camera_id(camera: str) -> str:
    """A camera's id: the uuid of its endpoint reference, lower case (other keys are kept as they are)."""
    text = camera.strip()
    return text[len("urn:uuid:") :].lower() if text.lower().startswith("urn:uuid:") else text


class RetentionConfig(BaseModel):
    """How long recordings are kept and how much of the recordings volume must stay free."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: float = Field(default=30.0, gt=0, le=3650, description="keep recordings this many days (default per camera)")
    camera_days: dict[str, float] = Field(
        default_factory=dict,
        max_length=1024,
        description="per-camera retention in days, keyed by the camera's id (the uuid of its endpoint reference)",
    )
    floor_bytes: int = Field(
        default=0, ge=0, description="keep at least this many bytes free on the recordings volume (0: no byte floor)"
    )
    floor_percent: float = Field(
        default=5.0, ge=0, lt=100, description="keep at least this share of the volume free, in percent (0: none)"
    )
    headroom_bytes: int = Field(
        default=256 * MIB,
        ge=0,
        description="when the floor is reached, free this much more, so that deleting is not needed at every segment",
    )
    enospc_delete_segments: int = Field(
        default=4, ge=1, le=10_000, description="after a write fails for lack of space, delete at least this many"
    )
    interval_s: float = Field(default=60.0, gt=0, le=86_400, description="seconds between retention passes")
    batch: int = Field(default=200, ge=1, le=100_000, description="segments looked at per index query")

    @field_validator("camera_days")
    @classmethod
    def _overrides(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(camera for camera, days in value.items() if not 0 < days <= 3650)
        if bad:
            raise ValueError(f"camera_days must be in (0, 3650] days; wrong for: {', '.join(bad)}")
        return {camera_id(camera): days for camera, days in value.items()}

    def days_for(self, camera: str) -> float:
        """The camera's retention; `camera` may be its id (a sub-stream's `<id>.sub` too) or endpoint reference."""
        key = camera_id(camera)
        return self.camera_days.get(key, self.camera_days.get(key.removesuffix(".sub"), self.days))

    def floor_for(self, total_bytes: int) -> int:
        """The free-space floor in bytes on a volume of `total_bytes`: the larger of the two settings."""
        return max(self.floor_bytes, int(total_bytes * self.floor_percent / 100))
