"""Rendering pages with Jinja2 (autoescape on), and the headers every response carries.

Templates are read once when the app is built, so rendering does no file I/O in the event loop.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape

from controller.security.access import PRINCIPAL
from controller.web.i18n import LANG_COOKIE, language, translate

TEMPLATES = Path(__file__).resolve().parent / "templates"
DISPLAY_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def localtime(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(DISPLAY_ZONE).strftime("%Y-%m-%d %H:%M:%S")


class Renderer:
    def __init__(self, directory: Path = TEMPLATES) -> None:
        sources = {path.name: path.read_text(encoding="utf-8") for path in sorted(directory.glob("*.html"))}
        self._env = Environment(
            loader=DictLoader(sources),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["localtime"] = localtime

    def render(self, request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
        lang = language(request)
        principal = request.get(PRINCIPAL)
        html = self._env.get_template(name).render(
            t=lambda key: translate(key, lang),
            lang=lang,
            other_lang="en" if lang == "vi" else "vi",
            user=principal,
            csrf_token=principal.csrf_token if principal else "",
            path=request.path,
            **context,
        )
        response = web.Response(text=html, content_type="text/html", status=status)
        if request.query.get("lang") == lang:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="Lax", httponly=True)
        return response


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        _headers(exc)
        raise
    _headers(response)
    return response


def _headers(response: web.StreamResponse) -> None:
    if response.prepared:
        return
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.content_type == "text/html" or response.content_type == "application/json":
        response.headers.setdefault("Cache-Control", "no-store")
