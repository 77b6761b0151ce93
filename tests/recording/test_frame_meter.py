"""FrameMeter: one session's frames into its camera's stats (totals across sessions, fps and bitrate per window)."""

from __future__ import annotations

import pytest

from agents.recording.stats import RATE_WINDOW_S, FrameMeter, RecorderStats


def test_counts_totals_and_measures_rates_over_each_window() -> None:
    stats = RecorderStats("cam")
    meter = FrameMeter(stats)
    for i in range(50):  # 25 frames a second of 10 000 bytes, a keyframe every 25
        meter.count(10_000, i % 25 == 0, 100.0 + i / 25)
    assert (stats.frames_total, stats.bytes_total, stats.keyframes_total) == (50, 500_000, 2)
    assert stats.last_packet_monotonic == pytest.approx(100.0 + 49 / 25)
    assert stats.fps is None and stats.bitrate_bps is None  # the first window is not over yet
    meter.count(10_000, False, 100.0 + RATE_WINDOW_S)
    assert stats.fps == pytest.approx(25.0)  # 50 frame intervals over 2 s: a steady 25 fps reads 25
    assert stats.bitrate_bps == pytest.approx(50 * 10_000 * 8 / RATE_WINDOW_S)
    for i in range(1, 51):  # the next window starts at the frame that closed the last one
        meter.count(10_000, False, 100.0 + RATE_WINDOW_S + i / 25)
    assert stats.fps == pytest.approx(25.0) and stats.bitrate_bps == pytest.approx(2_000_000)


def test_a_new_session_counts_its_own_frames_into_the_same_totals() -> None:
    stats = RecorderStats("cam")
    FrameMeter(stats).count(1000, True, 5.0)
    second = FrameMeter(stats)
    second.count(2000, False, 6.0)
    assert second.frames == 1
    assert (stats.frames_total, stats.bytes_total, stats.keyframes_total) == (2, 3000, 1)
