"""The controller fixtures (SQLite, a ManualClock, rooms at two schools) for the meeting tests at the controller."""

from __future__ import annotations

from tests.controller.bookings.conftest import site
from tests.controller.conftest import app, client, clock, config

__all__ = ["app", "client", "clock", "config", "site"]
