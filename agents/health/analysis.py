"""Measures of one decoded frame and the verdicts drawn from a camera's recent samples (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from agents.health.config import HealthConfig

Grey = npt.NDArray[np.uint8]
THUMB_SIZE = (64, 36)
"""(width, height) of the grey thumbnails compared between samples: small enough to ignore noise and encoding."""


@dataclass(frozen=True)
class Measures:
    brightness: float
    """Mean luma, 0 (black) to 1 (white)."""
    contrast: float
    """Standard deviation of luma, 0 to 1 (a covered lens is uniform)."""
    sharpness: float
    """Variance of the Laplacian of the frame scaled to the analysis width (higher: sharper)."""
    thumb: Grey
    """The frame as a small grey thumbnail, kept to compare with the next sample."""


@dataclass(frozen=True)
class Verdict:
    dark: bool
    """Dark or covered (too dark, or one uniform colour)."""
    blurred: bool
    """Out of focus, fogged or smeared (only judged when the picture is not dark)."""
    frozen: bool
    """The picture has not changed over the last `frozen_samples` samples."""

    @property
    def healthy(self) -> bool:
        return not (self.dark or self.blurred or self.frozen)


def measure(grey: Grey, analysis_width: int = 640) -> Measures:
    """Brightness, contrast, sharpness and a thumbnail of a grey (luma) frame, scaled down to `analysis_width`."""
    height, width = grey.shape[:2]
    if width > analysis_width:  # never upscaled: that would blur a small picture
        scaled_height = max(1, round(height * analysis_width / width))
        grey = np.asarray(cv2.resize(grey, (analysis_width, scaled_height), interpolation=cv2.INTER_AREA))
    mean, std = cv2.meanStdDev(grey)
    # 16-bit integers hold a 3x3 Laplacian of 8-bit pixels exactly, at a seventh of the cost of floats.
    _, laplacian_std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_16S))
    thumb = np.asarray(cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return Measures(
        brightness=float(mean[0][0]) / 255.0,
        contrast=float(std[0][0]) / 255.0,
        sharpness=float(laplacian_std[0][0]) ** 2,
        thumb=thumb,
    )


def change(previous: Grey, current: Grey) -> float:
    """Mean absolute difference of two thumbnails, 0 (identical) to 1."""
    return float(cv2.absdiff(previous, current).mean()) / 255.0


def judge(latest: Measures, changes: Sequence[float], config: HealthConfig) -> Verdict:
    """The verdict for a camera from its latest sample and the changes between its recent samples (newest last)."""
    dark = latest.brightness < config.dark_below or latest.contrast < config.uniform_below
    blurred = not dark and latest.sharpness < config.blurred_below
    recent = list(changes)[-config.frozen_samples :]
    frozen = len(recent) >= config.frozen_samples and all(c < config.frozen_change_below for c in recent)
    return Verdict(dark=dark, blurred=blurred, frozen=frozen)
