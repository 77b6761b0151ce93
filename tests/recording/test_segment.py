"""The segment writer on its own: H.265 passes through as it is, fragments stay under fragment_s."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.stream import VideoStream

from agents.recording import mp4
from agents.recording.segment import SegmentWriter
from tests.recording.helpers import decodes, ffprobe


def encode(path: Path, codec: str, seconds: float = 3.0, fps: int = 25, gop: int = 25) -> None:
    """A small test clip (MPEG-TS, as a camera's stream would arrive) with a keyframe every `gop` frames."""
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream(codec, rate=fps)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.gop_size = gop
        if codec == "libx265":
            stream.options = {"x265-params": "log-level=error:keyint=25:min-keyint=25:scenecut=0:bframes=0"}
        else:
            stream.options = {"bf": "0", "sc_threshold": "0"}
        for i in range(int(seconds * fps)):
            image = np.full((240, 320, 3), (i * 7) % 255, dtype=np.uint8)
            image[:, (i * 4) % 320 :] = 40
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.mark.parametrize(("encoder", "codec"), [("libx265", "hevc"), ("libx264", "h264")])
def test_passthrough_into_fragmented_mp4(tmp_path: Path, encoder: str, codec: str) -> None:
    source = tmp_path / "source.ts"
    encode(source, encoder)
    target = tmp_path / "segment.mp4"
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        writer = SegmentWriter(target, stream, fragment_s=0.5)
        for packet in container.demux(stream):
            if packet.dts is None:
                continue
            writer.write(packet, packet.dts, packet.pts if packet.pts is not None else packet.dts)
        duration = writer.duration_s
        size = writer.close()
    assert size == target.stat().st_size
    probed = ffprobe(target)
    assert probed["streams"][0]["codec_name"] == codec  # as it came: not transcoded
    assert probed["packets"][0]["flags"].startswith("K")
    assert decodes(target) == len(probed["packets"]) == 75
    assert duration == pytest.approx(3.0, abs=0.05)
    # Fragments of at most 0.5 s: at 25 fps, no fragment holds more than 13 frames; each whole one plays.
    found = mp4.probe(target)
    assert found is not None and found.keyframes == 3 and found.codec == codec
    cuts = sorted({mp4.complete_length(_cut(target, tmp_path, n)) for n in range(1, 40)})
    assert len(cuts) >= 6  # 3 s in fragments of at most 0.5 s


def _cut(path: Path, tmp_path: Path, n: int) -> Path:
    data = path.read_bytes()
    out = tmp_path / f"cut-{n}.mp4"
    out.write_bytes(data[: len(data) * n // 40])
    return out
