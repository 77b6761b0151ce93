"""Calibration of the image-health thresholds on the simulator's moving pattern.

The simulator's keyframes (decoded alone, as the agent does) are judged healthy with a wide margin; a black and
a uniform frame are dark (covered); a Gaussian-blurred copy is blurred; the same frame sampled again and again is
frozen. The figures are printed (pytest -s) so that a change of pattern or threshold shows its margins.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from agents.health.analysis import Grey, change, judge, measure
from agents.health.config import HealthConfig
from agents.health.monitor import decode_keyframe, luma

CONFIG = HealthConfig()


def keyframes(path: Path) -> list[Grey]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        extradata = bytes(stream.codec_context.extradata or b"")
        return [
            luma(decode_keyframe("h264", extradata, bytes(p))).copy() for p in container.demux(stream) if p.is_keyframe
        ]


def test_simulator_keyframes_are_healthy_with_margins(simulator_mp4: Path) -> None:
    first, second = keyframes(simulator_mp4)
    a, b = measure(first), measure(second)
    moved = change(a.thumb, b.thumb)
    print(
        f"\ncalibration: brightness {a.brightness:.3f}/{b.brightness:.3f} (dark below {CONFIG.dark_below}), "
        f"contrast {a.contrast:.3f}/{b.contrast:.3f} (uniform below {CONFIG.uniform_below}), "
        f"sharpness {a.sharpness:.0f}/{b.sharpness:.0f} (blurred below {CONFIG.blurred_below}), "
        f"change {moved:.3f} (frozen below {CONFIG.frozen_change_below})"
    )
    for m in (a, b):
        assert judge(m, [moved] * 5, CONFIG).healthy
        assert m.brightness > 3 * CONFIG.dark_below
        assert m.contrast > 5 * CONFIG.uniform_below
        assert m.sharpness > 5 * CONFIG.blurred_below
    assert moved > 50 * CONFIG.frozen_change_below


def test_black_and_uniform_frames_are_dark(simulator_mp4: Path) -> None:
    frame = keyframes(simulator_mp4)[0]
    black = np.zeros_like(frame)
    night = (frame // 10).astype(np.uint8)  # a tenth of the light
    covered = np.full_like(frame, 140)  # a hand over the lens in a lit room: uniform, not dark
    for grey in (black, night, covered):
        verdict = judge(measure(grey), [], CONFIG)
        assert verdict.dark and not verdict.blurred, measure(grey)


def test_a_blurred_copy_is_blurred_and_not_dark(simulator_mp4: Path) -> None:
    frame = keyframes(simulator_mp4)[0]
    blurred = np.asarray(cv2.GaussianBlur(frame, (15, 15), 0), dtype=np.uint8)
    m = measure(blurred)
    print(f"\nblurred copy: sharpness {m.sharpness:.1f}, brightness {m.brightness:.3f}")
    verdict = judge(m, [], CONFIG)
    assert verdict.blurred and not verdict.dark
    assert m.sharpness < CONFIG.blurred_below / 2
    # A lighter blur (3x3) is still sharp enough.
    assert not judge(measure(np.asarray(cv2.GaussianBlur(frame, (3, 3), 0), dtype=np.uint8)), [], CONFIG).blurred


def test_the_same_frame_repeated_is_frozen_after_n_samples(simulator_mp4: Path) -> None:
    first, second = keyframes(simulator_mp4)
    m = measure(first)
    again = change(m.thumb, measure(first.copy()).thumb)
    assert again == 0.0
    n = CONFIG.frozen_samples
    assert judge(m, [again] * n, CONFIG).frozen
    assert not judge(m, [again] * (n - 1), CONFIG).frozen
    moved = change(m.thumb, measure(second).thumb)
    assert not judge(m, [*[again] * (n - 1), moved], CONFIG).frozen
    assert not judge(m, [moved, *[again] * (n - 1)], CONFIG).frozen
    # Sensor noise on a still scene is change, not a frozen picture: +-2 levels of noise stay under the threshold
    # only after downscaling; a real freeze repeats the picture exactly.
    rng = np.random.default_rng(1)
    noisy = np.clip(first.astype(np.int16) + rng.integers(-2, 3, first.shape), 0, 255).astype(np.uint8)
    assert change(m.thumb, measure(noisy).thumb) < CONFIG.frozen_change_below


@pytest.mark.parametrize("width", [320, 640, 1920])
def test_measures_do_not_depend_much_on_the_resolution(simulator_mp4: Path, width: int) -> None:
    frame = keyframes(simulator_mp4)[0]
    scaled = np.asarray(cv2.resize(frame, (width, width * 9 // 16), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    assert judge(measure(scaled), [], CONFIG).healthy


def test_a_keyframe_needs_the_streams_extradata(simulator_mp4: Path) -> None:
    with av.open(str(simulator_mp4)) as container:
        stream = container.streams.video[0]
        packet = next(p for p in container.demux(stream) if p.is_keyframe)
        with pytest.raises((av.error.FFmpegError, ValueError)):
            decode_keyframe("h264", b"", bytes(packet))
