"""The bookings tests' fixtures (both backends, rooms at two schools), reused for calendars and join links."""

from __future__ import annotations

from tests.controller.bookings.conftest import config, site

__all__ = ["config", "site"]
