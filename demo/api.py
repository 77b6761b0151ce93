"""The controller's JSON API as the demo's administrator: one cookie session and its CSRF token.

The booking, live-view and meeting seeds all go through it, so a refusal reads the same whichever seed met it.
"""

from __future__ import annotations

from typing import Any

import aiohttp


class ApiRefused(Exception):
    """The controller refused a step of a seed (or the sign-in)."""


class Api:
    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http, self.url, self.token = http, url, token

    @classmethod
    async def sign_in(cls, http: aiohttp.ClientSession, url: str, password: str, username: str = "admin") -> Api:
        """Sign in with the form (as a browser does) and take the session's CSRF token."""
        form = {"username": username, "password": password}
        async with http.post(f"{url}/signin", data=form, headers={"Origin": url}, allow_redirects=False):
            pass
        async with http.get(f"{url}/api/session") as response:
            if response.status != 200:
                raise ApiRefused(f"signing in as {username} failed (HTTP {response.status})")
            return cls(http, url, (await response.json())["csrf_token"])

    async def call(self, method: str, path: str, body: object = None) -> Any:
        headers = {"Origin": self.url, "X-CSRF-Token": self.token}
        async with self.http.request(method, f"{self.url}{path}", json=body, headers=headers) as response:
            answer = await response.json()
            if response.status >= 400:
                raise ApiRefused(f"{method} {path}: HTTP {response.status} {answer}")
            return answer
