"""The API's error answer: `{"error": "what is wrong"}` with a 4xx status (the OpenAPI document describes it)."""

from __future__ import annotations

from aiohttp import web


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
