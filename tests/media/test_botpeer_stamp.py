"""The benchmark's frame stamp: read back only where a frame ends with one, never from video bytes."""

from __future__ import annotations

from media.rooms.botpeer import STAMP, read_stamp, stamp


def test_a_stamped_frame_gives_its_time_and_anything_else_gives_none() -> None:
    video = bytes(range(200))
    assert read_stamp(video + stamp(1234.5)) == 1234.5
    assert read_stamp(video) is None  # a frame whose last packet (with the stamp) was lost
    assert read_stamp((video + stamp(1234.5))[: -STAMP.size // 2]) is None
    assert read_stamp(stamp(1.0)) is None  # a stamp with no frame before it is not a frame
