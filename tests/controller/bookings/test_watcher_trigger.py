"""Booking changes do not wake the live-view watcher (they take no right away); other changes still do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from controller import state
from controller.live.watcher import LIVE, WATCHER, Watcher
from tests.controller.bookings.conftest import Site, as_user
from tests.controller.conftest import Client


class CountingWatcher(Watcher):
    """The real watcher, counting the wake-ups it is given."""

    wakes = 0

    def wake(self) -> None:
        self.wakes += 1
        super().wake()


@pytest.fixture
def counting(app: web.Application) -> CountingWatcher:
    """Put in place before the app starts (this fixture comes before `client` in the test's arguments)."""
    watcher = CountingWatcher(app[LIVE], app[state.CLOCK])
    app[WATCHER] = watcher
    return watcher


async def test_bookings_leave_the_watcher_asleep_and_a_token_change_wakes_it(
    counting: CountingWatcher, client: Client, site: Site
) -> None:
    booker = await as_user(client, site.booker)
    before = counting.wakes
    start = datetime(2026, 1, 6, 2, 0, tzinfo=UTC)
    body = {"title": "A", "mode": "meeting", "host_room": site.room, "start": start.isoformat(),
            "end": (start + timedelta(minutes=45)).isoformat()}  # fmt: skip
    status, created = await booker.send("POST", "/api/bookings", body)
    assert status == 201, created
    status, _ = await booker.send("POST", f"/api/bookings/{created['id']}/cancel")
    assert status == 200
    assert counting.wakes == before
    status, _ = await booker.send("POST", "/api/tokens", {"name": "script"})
    assert status == 201
    assert counting.wakes == before + 1
