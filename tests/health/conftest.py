"""The simulator's picture as an MP4 file (avcC extradata, length-prefixed packets), made once per session."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from simulator.video import MAIN, encode_loop

START_CODE = b"\x00\x00\x00\x01"


@pytest.fixture(scope="session")
def simulator_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two GOPs (4 s, 100 frames) of the simulator's main stream, as recorded: no re-encoding."""
    loop = encode_loop("Mầm non Hoa Sen lớp 1", MAIN)
    path = tmp_path_factory.mktemp("health") / "loop.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("h264", rate=MAIN.fps)
        stream.width, stream.height = MAIN.width, MAIN.height
        stream.codec_context.extradata = START_CODE + loop.sps + START_CODE + loop.pps
        stream.time_base = Fraction(1, 90_000)
        pts = 0
        for frame in loop.frames:
            packet = av.Packet(b"".join(START_CODE + nal for nal in frame.nals))
            packet.pts = packet.dts = pts
            packet.time_base = Fraction(1, 90_000)
            packet.stream = stream
            packet.is_keyframe = frame.keyframe
            pts += frame.duration
            out.mux(packet)
    return path
