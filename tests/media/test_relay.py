"""The camera relay: viewers come and go on one source; it closes a set time after the last one left."""

from __future__ import annotations

import asyncio

import pytest

from common.clock import ManualClock
from media.forwarding import Source
from media.relay import Relay, RelayClosed

IDR = b"\x00\x00\x00\x01\x67\x42\x00\x00\x00\x01\x65\x88"
P = b"\x00\x00\x00\x01\x41\x9a"


async def settle() -> None:
    """Let the relay's timer task see a clock change (a few loop turns; no wall-clock wait)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_viewers_share_one_source_and_start_from_its_cache() -> None:
    clock = ManualClock()
    relay = Relay("cam-7", clock=clock, idle_timeout_s=30)
    source = Source("cam-7", "video", "H264", clock=clock)
    early = relay.add_viewer("a")  # before the publication arrives: waits for it
    relay.set_source(source)
    source.push(IDR, 0)
    source.push(P, 3600)
    late = relay.add_viewer("b")
    assert early.stats.frames_out == 2 and late.stats.cached_frames_out == 2
    assert len(list(source.sinks)) == 2
    relay.remove_viewer("a")
    assert len(list(source.sinks)) == 1 and early.track is not None and not early.track.accepting
    await relay.close("test")
    assert relay.closed.is_set() and source.closed.is_set() and relay.close_reason == "test"
    with pytest.raises(RelayClosed):
        relay.add_viewer("c")


async def test_the_relay_closes_after_the_idle_time_once_the_last_viewer_left() -> None:
    clock = ManualClock()
    relay = Relay("cam-7", clock=clock, idle_timeout_s=30)
    relay.add_viewer("a")
    relay.add_viewer("b")
    await clock.advance(60)
    await settle()
    assert not relay.closed.is_set(), "viewers are watching"
    relay.remove_viewer("a")
    relay.remove_viewer("b")
    await clock.advance(20)
    await settle()
    assert not relay.closed.is_set()
    relay.add_viewer("c")  # a viewer comes back in time: the timer stops
    await clock.advance(20)
    await settle()
    assert not relay.closed.is_set()
    relay.remove_viewer("c")
    await clock.advance(29)
    await settle()
    assert not relay.closed.is_set()
    await clock.advance(2)
    await settle()
    assert relay.closed.is_set() and relay.close_reason == "idle"


async def test_a_relay_nobody_joins_closes_too() -> None:
    clock = ManualClock()
    relay = Relay("cam-7", clock=clock, idle_timeout_s=10)
    await clock.advance(11)
    await settle()
    assert relay.closed.is_set()


async def test_a_viewer_id_joining_twice_replaces_its_old_sink() -> None:
    clock = ManualClock()
    relay = Relay("cam-7", clock=clock, idle_timeout_s=10, max_viewers=2)
    first = relay.add_viewer("a")
    second = relay.add_viewer("a")
    assert first is not second and list(relay.viewers) == ["a"]
    relay.add_viewer("b")
    with pytest.raises(RelayClosed, match="2 viewers"):
        relay.add_viewer("c")
    await relay.close()
