"""POST/DELETE /api/cameras/{camera}/holds: bearer token, validated bodies, holds through the real index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from pytest_aiohttp.plugin import AiohttpClient

from agents.recording.index import SegmentIndex
from agents.storage.routes import HoldRoutes

TOKEN = "a-test-token-of-enough-length"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAMERA = "5d6a2c1e-0f43-5b8e-9c55-3e0f3e7b9a10"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


async def test_holds_are_placed_and_released_with_the_token_only(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    async with await SegmentIndex.open(tmp_path / "recordings.db") as index:
        for minute in range(5):
            start = T0 + timedelta(minutes=minute)
            await index.add_segment(
                CAMERA, f"{minute}.mp4", start, end=start + timedelta(minutes=1), bytes=10, complete=True
            )
        app = web.Application()
        HoldRoutes(index, TOKEN).add_routes(app)
        client = await aiohttp_client(app)
        url = f"/api/cameras/{CAMERA}/holds"
        body = {"start": "2026-03-02T08:01:30+07:00", "end": "2026-03-02T01:03:00Z", "reason": "incident 12"}

        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN}):
            response = await client.post(url, json=body, headers=headers)
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert not any(s.held for s in await index.all_segments())

        bad = {
            "not JSON": (b"{", "not JSON"),
            "naive": (b'{"start": "2026-03-02T01:00:00", "end": "2026-03-02T02:00:00"}', "timezone"),
            "reversed": (b'{"start": "2026-03-02T02:00:00Z", "end": "2026-03-02T01:00:00Z"}', "end must be after"),
            "missing": (b'{"start": "2026-03-02T02:00:00Z"}', "end: Field required"),
            "extra": (b'{"start": "2026-03-02T01:00:00Z", "end": "2026-03-02T02:00:00Z", "path": "/"}', "path"),
            "too long": (b'{"start": "2020-03-02T01:00:00Z", "end": "2026-03-02T02:00:00Z"}', "at most 366 days"),
        }
        for name, (data, message) in bad.items():
            response = await client.post(url, data=data, headers={**AUTH, "Content-Type": "application/json"})
            assert response.status == 400, name
            assert message in (await response.json())["error"], name
        assert (await client.post(url, data=b"x" * 5000, headers=AUTH)).status == 413
        assert (await client.post("/api/cameras/..%2Fetc/holds", json=body, headers=AUTH)).status in (400, 404)

        response = await client.post(url, json=body, headers=AUTH)
        assert response.status == 200
        answer = await response.json()
        assert answer["segments"] == 2 and answer["held"] is True  # minutes 1 and 2 overlap 01:01:30-01:03:00
        held = sorted(s.path for s in await index.all_segments() if s.held)
        assert held == ["1.mp4", "2.mp4"]

        response = await client.delete(url, json={"start": "2026-03-02T01:00:00Z", "end": "2026-03-02T02:00:00Z"})
        assert response.status == 401
        response = await client.delete(
            url, json={"start": "2026-03-02T01:00:00Z", "end": "2026-03-02T02:00:00Z"}, headers=AUTH
        )
        assert response.status == 200 and (await response.json())["segments"] == 2
        assert not any(s.held for s in await index.all_segments())

        # The held ranges are listed (with the token only); what was released is gone from them.
        await client.post(url, json=body, headers=AUTH)
        assert (await client.get(url)).status == 401
        assert (await client.get("/api/cameras/..%2Fetc/holds", headers=AUTH)).status in (400, 404)
        listed = await (await client.get(url, headers=AUTH)).json()
        assert listed == {
            "camera": CAMERA,
            "holds": [{"start": "2026-03-02T01:01:30+00:00", "end": "2026-03-02T01:03:00+00:00"}],
        }
