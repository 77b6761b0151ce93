"""The agent's local recordings API (bearer token): segments and gaps of a camera, downloads, clip export.

    GET /api/cameras/{camera}/segments?start=&end=   segments overlapping the range (JSON)
    GET /api/cameras/{camera}/gaps?start=&end=       gaps overlapping the range (JSON)
    GET /api/segments/{id}                           one segment's file (video/mp4)
    GET /api/cameras/{camera}/export?start=&end=     one MP4 clip remuxed across finished segments (headers
                                                     X-Clip-Start, X-Clip-End; X-Clip-Unfinished when the
                                                     segment being recorded was left out)

`start` and `end` are ISO 8601 with a UTC offset; `end` after `start`; the range is bounded. Every failure is
a 4xx whose JSON says what is wrong. Files are found by index id only (paths.py refuses anything that leaves
the root or passes through a link). Routes are mounted on the agent's local aiohttp app by `add_routes`; each
handler checks the token itself, so the app's other routes (/healthz, /metrics) are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from agents.recording.cameras import SAFE_ID
from agents.recording.config import RecordingConfig
from agents.recording.export import ExportError, export_clip
from agents.recording.index import Gap, Segment, SegmentIndex
from agents.recording.paths import PathRefused, resolve_segment
from agents.recording.token import matches

logger = logging.getLogger(__name__)

CHUNK = 256 * 1024
MAX_ID = 2**63 - 1
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class BadRequest(Exception):
    pass


def parse_time(query: Any, name: str) -> datetime:
    raw = query.get(name)
    if raw is None or raw == "":
        raise BadRequest(f"{name} is required (ISO 8601 with a UTC offset, e.g. 2026-03-01T08:00:00+07:00)")
    if len(raw) > 64:
        raise BadRequest(f"{name} is too long to be a time")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise BadRequest(f"{name} is not an ISO 8601 time: {raw!r}") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise BadRequest(f"{name} needs a UTC offset (Z or +07:00): {raw!r}")
    return value


def parse_range(request: web.Request, longest_s: float) -> tuple[datetime, datetime]:
    start, end = parse_time(request.query, "start"), parse_time(request.query, "end")
    if end <= start:
        raise BadRequest("end must be after start")
    if end - start > timedelta(seconds=longest_s):
        raise BadRequest(f"the range is longer than the longest allowed ({longest_s:g} s)")
    return start, end


def _camera(request: web.Request) -> str:
    camera = request.match_info["camera"]
    if SAFE_ID.fullmatch(camera) is None:
        raise BadRequest("not a camera id")
    return camera


def segment_json(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "camera": segment.camera,
        "start": segment.start.isoformat(),
        "end": segment.end.isoformat(),
        "duration_s": round(segment.duration_s, 3),
        "bytes": segment.bytes,
        "complete": segment.complete,
        "held": segment.held,
        "url": f"/api/segments/{segment.id}",
    }


def gap_json(gap: Gap) -> dict[str, Any]:
    return {
        "id": gap.id,
        "camera": gap.camera,
        "start": gap.start.isoformat(),
        "end": gap.end.isoformat(),
        "seconds": round(gap.seconds, 3),
        "reason": gap.reason,
    }


class RecordingApi:
    """The handlers; `add_routes(app)` mounts them."""

    def __init__(self, index: SegmentIndex, root: Path, token: str, export_dir: Path, config: RecordingConfig) -> None:
        self.index = index
        self.root = root
        self._token = token
        self.export_dir = export_dir
        self.config = config
        self._exports = asyncio.Semaphore(2)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/cameras/{camera}/segments", self._guard(self.list_segments))
        app.router.add_get("/api/cameras/{camera}/gaps", self._guard(self.list_gaps))
        app.router.add_get("/api/cameras/{camera}/export", self._guard(self.export))
        app.router.add_get("/api/segments/{id}", self._guard(self.download))

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not matches(self._token, request.headers.get("Authorization")):
                response = _problem(401, "a valid bearer token is required")
                response.headers["WWW-Authenticate"] = 'Bearer realm="ketnoi-agent"'
                return response
            try:
                return await handler(request)
            except BadRequest as exc:
                return _problem(400, str(exc))

        return guarded

    async def list_segments(self, request: web.Request) -> web.StreamResponse:
        camera = _camera(request)
        start, end = parse_range(request, self.config.query_max_s)
        rows = await self.index.segments(camera, start, end)
        return web.json_response({"camera": camera, "segments": [segment_json(s) for s in rows]})

    async def list_gaps(self, request: web.Request) -> web.StreamResponse:
        camera = _camera(request)
        start, end = parse_range(request, self.config.query_max_s)
        rows = await self.index.gaps(camera, start, end)
        return web.json_response({"camera": camera, "gaps": [gap_json(g) for g in rows]})

    async def download(self, request: web.Request) -> web.StreamResponse:
        raw = request.match_info["id"]
        if not raw.isdigit() or len(raw) > 19 or not 0 < int(raw) <= MAX_ID:
            raise BadRequest("a segment id is a positive integer")
        segment = await self.index.get(int(raw))
        if segment is None:
            return _problem(404, "no such segment")
        try:
            fd = await asyncio.to_thread(_open_segment, self.root, segment.path)
        except PathRefused as exc:
            logger.warning("%s: segment %d refused: %s", segment.camera, segment.id, exc)
            return _problem(404, "the segment's file is not available")
        name = f"{segment.camera}-{segment.start:%Y%m%dT%H%M%SZ}.mp4"
        return await _stream_fd(request, fd, name)

    async def export(self, request: web.Request) -> web.StreamResponse:
        camera = _camera(request)
        start, end = parse_range(request, self.config.export_max_s)
        # A keyframe before `start` may lie in the previous segment: look one segment length back.
        lookback = timedelta(seconds=self.config.segment_s)
        segments = await self.index.segments(camera, start - lookback, end)
        async with self._exports:
            await asyncio.to_thread(self.export_dir.mkdir, parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix="clip-", suffix=".mp4", dir=self.export_dir)
            os.close(fd)
            out = Path(name)
            try:
                clip = await asyncio.to_thread(export_clip, self.root, segments, start, end, out)
                handle = await asyncio.to_thread(os.open, out, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except ExportError as exc:
                return _problem(404, str(exc))
            finally:
                await asyncio.to_thread(out.unlink, missing_ok=True)  # the open descriptor keeps the data
        filename = f"{camera}-{clip.start:%Y%m%dT%H%M%SZ}.mp4"
        headers = {"X-Clip-Start": clip.start.isoformat(), "X-Clip-End": clip.end.isoformat()}
        if clip.unfinished:
            headers["X-Clip-Unfinished"] = (
                f"{clip.unfinished} segment(s) in the range are still being recorded and are not in this clip; "
                "ask again once they are finished"
            )
        return await _stream_fd(request, handle, filename, headers)


def _open_segment(root: Path, relative: str) -> int:
    path = resolve_segment(root, relative)
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise PathRefused(exc.strerror or "cannot open") from None


async def _stream_fd(
    request: web.Request, fd: int, filename: str, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """Send the file open at `fd` (closed afterwards) as video/mp4."""
    try:
        size = os.fstat(fd).st_size
        response = web.StreamResponse(
            headers={
                "Content-Type": "video/mp4",
                "Content-Length": str(size),
                "Content-Disposition": f'attachment; filename="{filename}"',
                **(headers or {}),
            }
        )
        await response.prepare(request)
        remaining = size  # a segment being written grows: send what it held when the response started
        while remaining > 0:
            chunk = await asyncio.to_thread(os.read, fd, min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
