"""Waiting in tests without sleeping for a fixed time: poll a condition until a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> None:  # noqa: ASYNC109
    """Return as soon as `predicate()` holds; fail with TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def eventually_sync(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    """The same, for code outside the event loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


async def eventually_true(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.2) -> None:  # noqa: ASYNC109
    """Like `eventually`, for a condition that needs I/O to check (an HTTP call, say)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
