"""Timestamps: strictly increasing within a connection, wall times never going back across connections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

from agents.recording.timeline import Continuity, Timeline

TB = Fraction(1, 90_000)
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_continuity_passes_steady_timestamps() -> None:
    series = Continuity(TB)
    assert [series.next(t) for t in (1000, 4600, 8200)] == [1000, 4600, 8200]
    assert series.jumps == 0


def test_continuity_bridges_backward_and_forward_jumps() -> None:
    series = Continuity(TB)
    out = [series.next(t) for t in (0, 3600, 7200)]
    out.append(series.next(100))  # the camera's timestamps went back
    out.append(series.next(3700))
    out.append(series.next(3700 + 3600 + 90_000 * 3600))  # an hour forward
    out.append(series.next(3700 + 7200 + 90_000 * 3600))
    assert out == [0, 3600, 7200, 10_800, 14_400, 18_000, 21_600]
    assert series.jumps == 2
    assert series.next(21_600 - 18_000 + 90_000 * 3600 + 3600) > 21_600  # a repeated timestamp moves on too


def segment(timeline: Timeline, arrivals: list[tuple[int, float]], duration_s: float) -> tuple[datetime, datetime]:
    """Feed one segment's packets (dts, arrival monotonic); its final (start, end)."""
    first_dts, first_at = arrivals[0]
    timeline.begin_segment(first_dts, first_at)
    for dts, at in arrivals:
        timeline.observe(dts, at)
    start, end, _ = timeline.finish_segment(duration_s)
    return start, end


def steady(first_dts: int, first_at: float, seconds: float, delay: float = 0.0) -> list[tuple[int, float]]:
    """25 fps packets arriving in real time (`delay` late)."""
    return [(first_dts + i * 3600, first_at + i * 0.04 + delay) for i in range(round(seconds * 25))]


def test_segments_follow_the_monotonic_clock_and_touch() -> None:
    timeline = Timeline()
    timeline.connect(TB, T0, 100.0)
    first = segment(timeline, steady(0, 100.0, 2), 2.0)
    second = segment(timeline, steady(180_000, 102.0, 2, delay=0.03), 2.0)  # jitter is not a gap
    assert first == (T0, T0 + timedelta(seconds=2))
    assert second == (T0 + timedelta(seconds=2), T0 + timedelta(seconds=4))


def test_a_burst_after_play_is_dated_when_it_was_captured() -> None:
    timeline = Timeline()
    timeline.connect(TB, T0, 100.0)
    # 1.6 s of buffered frames arrive at once, then frames come in real time.
    burst = [(i * 3600, 100.0 + i * 0.001) for i in range(40)]
    live = [(40 * 3600 + i * 3600, 100.04 + i * 0.04) for i in range(10)]
    start, end = segment(timeline, burst + live, 2.0)
    assert start == T0 - timedelta(seconds=1.6) + timedelta(seconds=0.04)
    assert end == start + timedelta(seconds=2)


def test_never_goes_back_after_a_clock_step() -> None:
    timeline = Timeline()
    timeline.connect(TB, T0, 100.0)
    _, end = segment(timeline, steady(0, 100.0, 2), 2.0)
    # Reconnect; meanwhile the agent's clock was stepped back an hour.
    timeline.connect(TB, T0 - timedelta(hours=1), 103.0)
    start, _ = segment(timeline, steady(0, 103.0, 2), 2.0)
    assert start == end
    # A clock step during a connection changes nothing: only the monotonic clock is read.
    timeline.connect(TB, T0 + timedelta(seconds=300), 400.0)
    start, _ = segment(timeline, steady(0, 400.0, 2), 2.0)
    assert start == T0 + timedelta(seconds=300)


def test_a_slow_camera_clock_shows_as_a_drift_gap() -> None:
    timeline = Timeline(max_drift_s=1.0)
    timeline.connect(TB, T0, 100.0)
    segment(timeline, steady(0, 100.0, 2), 2.0)
    # The next segment's 2 s of stream time arrive 1.5 s later than they should.
    timeline.begin_segment(180_000, 103.5)
    timeline.observe(180_000, 103.5)
    start, _, hole = timeline.finish_segment(2.0)
    assert hole == timedelta(seconds=1.5) and start == T0 + timedelta(seconds=3.5)
    assert timeline.drift_gaps == 1


def test_starts_after_what_was_recorded_before_a_restart() -> None:
    timeline = Timeline(T0 + timedelta(minutes=10))
    timeline.connect(TB, T0, 1.0)
    start, _ = segment(timeline, steady(0, 1.0, 1), 1.0)
    assert start == T0 + timedelta(minutes=10)
