"""Hundreds of flaps (a camera that drops the connection shortly after PLAY, every time): no thread, file
descriptor or task left behind, and the recorder keeps recording between flaps. Over TCP the session runs on the
event loop (no thread at all); over UDP it is PyAV's, one thread at a time."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from agents.recording.cameras import camera_id
from tests.agents.cameras import running, spec
from tests.recording.helpers import ready_report, recording_config, supervising
from tests.waiting import eventually

FLAPS = 200


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def session_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("record-")]


@pytest.mark.slow
@pytest.mark.parametrize(("transport", "threads"), [("tcp", 0), ("udp", 1)])
async def test_hundreds_of_flaps_leak_nothing(tmp_path: Path, transport: str, threads: int) -> None:
    config = recording_config(
        reconnect_base_s=0.01, reconnect_cap_s=0.02, segment_s=1.0, fragment_s=0.5, transport=transport
    )
    async with running([spec("rec-flap", "127.0.1.51", drop_after_s=0.15)]) as cameras:
        camera = camera_id(cameras[0].spec.endpoint_ref)
        # Warm up once (the simulator encodes its loop, the default executor starts its threads).
        async with supervising(tmp_path / "warm", config) as supervisor:
            supervisor.update(ready_report(cameras[0]))
            await eventually(lambda: supervisor.stats()[camera].reconnects_total >= 3, timeout=30)
        fds, tasks = open_fds(), len(asyncio.all_tasks())
        assert session_threads() == []
        started = time.monotonic()
        most_threads = 0
        async with supervising(tmp_path / "state", config) as supervisor:
            supervisor.update(ready_report(cameras[0]))

            def flapped() -> bool:
                nonlocal most_threads
                most_threads = max(most_threads, len(session_threads()))
                return supervisor.stats()[camera].reconnects_total >= FLAPS

            await eventually(flapped, timeout=150, interval=0.01)
            stats = supervisor.stats()[camera]
            recorder = supervisor.recorder(camera)
            assert recorder is not None
            reasons = {end.reason for end in recorder.history}
        elapsed = time.monotonic() - started
        await eventually(lambda: cameras[0].rtsp.sessions_active == 0, timeout=10)
        # Nothing left behind: no session thread, no descriptor, no task.
        assert session_threads() == []
        assert open_fds() == fds
        assert len(asyncio.all_tasks()) == tasks
    assert most_threads == threads  # one session at a time, in a thread only over UDP
    assert reasons <= {"drop", "stall", "open_failed", "error"} and "drop" in reasons
    assert stats.segments_total >= FLAPS // 2  # each flap still records what it got
    assert stats.gaps_total >= FLAPS // 2
    print(f"{FLAPS} flaps over {transport} in {elapsed:.1f} s")
