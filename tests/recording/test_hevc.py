"""H.265 through the whole path: a simulated camera streaming H.265 (`/main265`) is recorded as it is (no
transcoding) into segments that ffprobe reads as HEVC, start on a keyframe and decode; the keyframe hook gets
keyframes that decode on their own (what image health does)."""

from __future__ import annotations

from pathlib import Path

from agents.health.monitor import decode_keyframe
from agents.recording.cameras import camera_id
from agents.recording.hooks import Keyframe
from protocol.camera import CameraReport
from tests.agents.cameras import running, spec
from tests.recording.helpers import check_segment, complete_segments, ffprobe, ready_report, supervising, wait_segments


def hevc_report(report: CameraReport) -> CameraReport:
    """The camera's report with its main profile pointing at the H.265 stream."""
    profiles = [
        p.model_copy(update={"encoding": "H265", "stream_uri": (p.stream_uri or "").replace("/main", "/main265")})
        if p.role == "main"
        else p
        for p in report.profiles
    ]
    return report.model_copy(update={"profiles": profiles})


async def test_h265_camera_is_recorded_as_it_is(tmp_path: Path) -> None:
    keyframes: list[Keyframe] = []

    def on_keyframe(camera: str, keyframe: Keyframe) -> None:
        keyframes.append(keyframe)

    async with (
        running([spec("rec-hevc", "127.0.1.54")]) as cameras,
        supervising(tmp_path, on_keyframe=on_keyframe) as supervisor,
    ):
        supervisor.update(hevc_report(ready_report(cameras[0])))
        camera = camera_id(cameras[0].spec.endpoint_ref)
        await wait_segments(supervisor, camera, 3, timeout=60)
        rows = await complete_segments(supervisor.index, camera)
    for row in rows:
        check_segment(tmp_path / "recordings", row)
        probed = ffprobe(tmp_path / "recordings" / row.path)
        assert probed["streams"][0]["codec_name"] == "hevc"
        assert abs(row.duration_s - 2.0) < 0.05  # 2 s segments of a 2 s GOP
    assert keyframes and {k.codec for k in keyframes} == {"hevc"}
    frame = decode_keyframe(keyframes[-1].codec, keyframes[-1].extradata, keyframes[-1].data)
    assert (frame.width, frame.height) == (1280, 720)
