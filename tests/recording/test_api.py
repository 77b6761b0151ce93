"""The local recordings API: the token, listings, downloads by id only, validation, export across segments."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.recording.api import RecordingApi
from agents.recording.config import RecordingConfig
from agents.recording.index import DB_FILE, SegmentIndex
from agents.recording.token import load_or_create_token, matches
from tests.recording.conftest import Recorded
from tests.recording.helpers import ffprobe

TOKEN = "t" * 20


@pytest.fixture
async def state(recorded: Recorded, tmp_path: Path) -> Path:
    return recorded.copy_to(tmp_path / "state")


@pytest.fixture
async def client(state: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    index = await SegmentIndex.open(state / DB_FILE)
    app = web.Application()
    RecordingApi(index, state / "recordings", TOKEN, state / "exports", RecordingConfig(segment_s=2)).add_routes(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client
    await index.close()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def iso(value: Any) -> str:
    return str(value.isoformat())


def test_token_file_is_created_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "api-token"
    token = load_or_create_token(path)
    assert len(token) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(path) == token
    assert matches(token, f"Bearer {token}") and matches(token, f"bearer {token}")
    for wrong in (None, "", token, f"Basic {token}", f"Bearer {token}x", "Bearer "):
        assert not matches(token, wrong)


async def test_every_route_needs_the_token(client: TestClient[web.Request, web.Application]) -> None:
    paths = {resource.canonical for resource in client.app.router.resources()}
    assert paths == {
        "/api/cameras/{camera}/segments",
        "/api/cameras/{camera}/gaps",
        "/api/cameras/{camera}/export",
        "/api/segments/{id}",
    }
    for path in ("/api/cameras/x/segments", "/api/cameras/x/gaps", "/api/cameras/x/export", "/api/segments/1"):
        for headers in ({}, {"Authorization": "Bearer wrong-token-here"}, {"Authorization": TOKEN}):
            response = await client.get(path, headers=headers)
            assert response.status == 401, (path, headers)
            assert "token" in (await response.json())["error"]


async def test_lists_segments_and_gaps(client: TestClient[web.Request, web.Application], recorded: Recorded) -> None:
    first, last = recorded.segments[0], recorded.segments[-1]
    query = {"start": iso(first.start), "end": iso(last.end)}
    response = await client.get(f"/api/cameras/{recorded.camera}/segments", params=query, headers=AUTH)
    assert response.status == 200
    body = await response.json()
    assert [s["id"] for s in body["segments"]] == [s.id for s in recorded.segments]
    assert body["segments"][0]["url"] == f"/api/segments/{first.id}"
    assert "path" not in body["segments"][0]  # files are addressed by id only
    response = await client.get(f"/api/cameras/{recorded.camera}/gaps", params=query, headers=AUTH)
    assert response.status == 200 and (await response.json())["gaps"] == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "start is required"),
        ({"start": "2026-03-01T08:00:00+07:00"}, "end is required"),
        ({"start": "yesterday", "end": "2026-03-01T08:00:00Z"}, "not an ISO 8601"),
        ({"start": "2026-03-01T08:00:00", "end": "2026-03-01T09:00:00Z"}, "UTC offset"),
        ({"start": "2026-03-01T09:00:00Z", "end": "2026-03-01T08:00:00Z"}, "end must be after start"),
        ({"start": "2026-03-01T08:00:00Z", "end": "2026-03-01T08:00:00Z"}, "end must be after start"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"}, "longer than"),
        ({"start": "2026-03-01T08:00:00Z", "end": "9" * 100}, "too long"),
    ],
)
async def test_queries_are_validated(
    client: TestClient[web.Request, web.Application], query: dict[str, str], message: str
) -> None:
    for route in ("segments", "gaps", "export"):
        response = await client.get(f"/api/cameras/cam/{route}", params=query, headers=AUTH)
        assert response.status == 400
        assert message in (await response.json())["error"]


async def test_bad_camera_and_segment_ids(client: TestClient[web.Request, web.Application]) -> None:
    query = {"start": "2026-03-01T08:00:00Z", "end": "2026-03-01T09:00:00Z"}
    for camera in ("..", ".hidden", "a%2F..%2Fb", "x" * 200):
        response = await client.get(f"/api/cameras/{camera}/segments", params=query, headers=AUTH)
        assert response.status in (400, 404), camera
    for segment in ("0", "-1", "abc", "1.5", "9" * 30, "..%2F..%2Fetc%2Fpasswd"):
        response = await client.get(f"/api/segments/{segment}", headers=AUTH)
        assert response.status in (400, 404), segment
    response = await client.get("/api/segments/999999", headers=AUTH)
    assert response.status == 404


async def test_download_by_id(client: TestClient[web.Request, web.Application], recorded: Recorded) -> None:
    segment = recorded.segments[1]
    response = await client.get(f"/api/segments/{segment.id}", headers=AUTH)
    assert response.status == 200 and response.content_type == "video/mp4"
    body = await response.read()
    assert body == (recorded.state_dir / "recordings" / segment.path).read_bytes()


async def test_rows_pointing_outside_or_through_links_are_refused(
    client: TestClient[web.Request, web.Application], state: Path, recorded: Recorded, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"not for you")
    root = state / "recordings"
    async with await SegmentIndex.open(state / DB_FILE) as index:
        start = recorded.segments[0].start - timedelta(days=1)
        outside = await index.add_segment("cam", "../../secret.mp4", start)
        absolute = await index.add_segment("cam", str(secret), start + timedelta(seconds=1))
        (root / "cam").mkdir()
        (root / "cam" / "link.mp4").symlink_to(secret)
        linked = await index.add_segment("cam", "cam/link.mp4", start + timedelta(seconds=2))
        (root / "cam" / "dir").symlink_to(tmp_path)
        through = await index.add_segment("cam", "cam/dir/secret.mp4", start + timedelta(seconds=3))
    for segment in (outside, absolute, linked, through):
        response = await client.get(f"/api/segments/{segment.id}", headers=AUTH)
        assert response.status == 404, segment.path
        assert b"not for you" not in await response.read()


async def test_export_across_a_segment_boundary_plays_from_the_first_frame(
    client: TestClient[web.Request, web.Application], recorded: Recorded, state: Path, tmp_path: Path
) -> None:
    first, second = recorded.segments[0], recorded.segments[1]
    start = first.end - timedelta(seconds=0.7)  # inside the first segment's last GOP
    end = second.start + timedelta(seconds=1.0)
    query = {"start": iso(start), "end": iso(end)}
    response = await client.get(f"/api/cameras/{recorded.camera}/export", params=query, headers=AUTH)
    assert response.status == 200, await response.text()
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(await response.read())
    packets = ffprobe(clip)["packets"]
    assert packets[0]["flags"].startswith("K")
    # It starts on the keyframe at or before `start` (the first segment's only keyframe, at its start: 2 s GOP).
    assert response.headers["X-Clip-Start"] == first.start.isoformat()
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        frames = [frame for packet in container.demux(stream) for frame in packet.decode()]
    assert len(frames) == len(packets)  # every frame decodes, from the first one
    expected = (end - first.start).total_seconds()
    assert abs(len(frames) / 25 - expected) <= 0.08  # 25 fps; up to two frames either side of `end`
    assert os.listdir(state / "exports") == []  # the clip's temporary file is gone


async def test_export_of_a_range_without_recording(
    client: TestClient[web.Request, web.Application], recorded: Recorded
) -> None:
    before = recorded.segments[0].start - timedelta(hours=2)
    query = {"start": iso(before), "end": iso(before + timedelta(minutes=1))}
    response = await client.get(f"/api/cameras/{recorded.camera}/export", params=query, headers=AUTH)
    assert response.status == 404
    assert "no recording" in (await response.json())["error"]


async def test_export_leaves_out_the_segment_being_recorded_and_says_so(
    client: TestClient[web.Request, web.Application], recorded: Recorded, state: Path, tmp_path: Path
) -> None:
    *finished, last = recorded.segments
    async with await SegmentIndex.open(state / DB_FILE) as index:  # the last one is still being recorded
        await index.finish_segment(last.id, last.end, last.duration_s, last.bytes, complete=False, start=last.start)
    query = {"start": iso(finished[-1].start), "end": iso(last.end)}
    response = await client.get(f"/api/cameras/{recorded.camera}/export", params=query, headers=AUTH)
    assert response.status == 200, await response.text()
    assert "1 segment(s) in the range are still being recorded" in response.headers["X-Clip-Unfinished"]
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(await response.read())
    duration = float(ffprobe(clip)["format"]["duration"])
    assert abs(duration - finished[-1].duration_s) < 0.05  # the finished segment only
    assert abs((finished[-1].end - datetime.fromisoformat(response.headers["X-Clip-End"])).total_seconds()) < 0.05

    # A range that only the open segment covers: nothing yet, and the answer says why.
    query = {"start": iso(last.start), "end": iso(last.end)}
    response = await client.get(f"/api/cameras/{recorded.camera}/export", params=query, headers=AUTH)
    assert response.status == 404
    assert "exported once it is finished" in (await response.json())["error"]

    # Finished, the same range exports.
    async with await SegmentIndex.open(state / DB_FILE) as index:
        await index.finish_segment(last.id, last.end, last.duration_s, last.bytes, complete=True, start=last.start)
    response = await client.get(f"/api/cameras/{recorded.camera}/export", params=query, headers=AUTH)
    assert response.status == 200 and "X-Clip-Unfinished" not in response.headers
