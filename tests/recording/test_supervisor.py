"""Which streams the supervisor wants recorded as inventory reports come and go (no camera needed)."""

from __future__ import annotations

from pathlib import Path

from agents.discovery.credentials import Login
from agents.recording.cameras import camera_id, targets, with_credentials
from agents.recording.config import RecordingConfig
from agents.recording.index import DB_FILE, SegmentIndex
from agents.recording.supervisor import RecordingSupervisor
from protocol.camera import CameraReport, CameraState, StreamProfile
from tests.recording.helpers import login_for

REF = "urn:uuid:6F1C2A3B-0000-4000-8000-000000000001"


def report(state: CameraState = CameraState.READY, main: str | None = "rtsp://127.0.1.9:8554/main") -> CameraReport:
    profiles = [
        StreamProfile(token="m", name="m", role="main", encoding="H265", width=1, height=1, stream_uri=main),
        StreamProfile(
            token="s", name="s", role="sub", encoding="H264", width=1, height=1, stream_uri="rtsp://127.0.1.9/sub"
        ),
    ]
    return CameraReport.model_validate(
        {
            "endpoint_ref": REF,
            "address": "127.0.1.9",
            "state": state,
            "reason": "test",
            "profiles": profiles,
            "first_seen": "2026-03-01T08:00:00Z",
            "last_seen": "2026-03-01T08:00:00Z",
            "changed_at": "2026-03-01T08:00:00Z",
        }
    )


def test_camera_ids_are_safe_names() -> None:
    assert camera_id(REF) == "6f1c2a3b-0000-4000-8000-000000000001"
    odd = camera_id("../../etc/passwd")
    assert odd.startswith("id-") and "/" not in odd and odd == camera_id("../../etc/passwd")


def test_credentials_go_into_the_url_encoded() -> None:
    url = with_credentials("rtsp://127.0.1.9:8554/main?x=1", Login("ad min", "p@ss:w/rd%"))
    assert url == "rtsp://ad%20min:p%40ss%3Aw%2Frd%25@127.0.1.9:8554/main?x=1"
    assert with_credentials("rtsp://[::1]/main", Login("a", "b")) == "rtsp://a:b@[::1]/main"
    assert with_credentials("rtsp://127.0.1.9/main", None) == "rtsp://127.0.1.9/main"


def test_targets() -> None:
    config = RecordingConfig()
    assert [t.url for t in targets(report(), config)] == ["rtsp://127.0.1.9:8554/main"]
    assert targets(report(main=None), config) == []
    assert targets(report(main="http://127.0.1.9/mjpeg"), config) == []
    for state in (CameraState.FOUND, CameraState.AUTH_FAILED, CameraState.UNREACHABLE, CameraState.PENDING_APPROVAL):
        assert targets(report(state), config) == []
    with_sub = RecordingConfig(record_sub=True, transport="udp")
    found = targets(report(), with_sub)
    assert [(t.camera.endswith(".sub"), t.transport) for t in found] == [(False, "udp"), (True, "udp")]
    off = RecordingConfig(cameras={REF: {"enabled": False}})
    assert targets(report(), off) == []


async def test_a_ready_camera_that_fails_a_pass_keeps_recording(tmp_path: Path) -> None:
    async with await SegmentIndex.open(tmp_path / DB_FILE) as index:
        supervisor = RecordingSupervisor(RecordingConfig(), tmp_path / "rec", index, login_for)
        main = camera_id(REF)
        supervisor.update(report(CameraState.FOUND))
        assert supervisor.wanted() == []
        supervisor.update(report())
        assert supervisor.wanted() == [main]
        supervisor.update(report(CameraState.UNREACHABLE))
        assert supervisor.wanted() == [main]
        supervisor.update(report(main=None))  # ready, but without a main stream any more
        assert supervisor.wanted() == []
        supervisor.sync([report()])
        assert supervisor.wanted() == [main]
        supervisor.sync([])
        assert supervisor.wanted() == []
        assert supervisor.stats() == {}
