"""Headless Chromium for browser tests, driven over the Chrome DevTools Protocol (a WebSocket, with aiohttp).

    async with Browser.launch(tmp_path) as browser:
        page = browser.page
        await page.navigate("http://127.0.0.1:8000/signin")
        await page.wait_for("input[name=username]")
        await page.type("input[name=username]", "booker")
        await page.click("button[type=submit]")

Chromium is started with the flags that keep it off the network (docs/architecture.md, "Facts checked") and a
host resolver that maps every name but 127.0.0.1 to nothing; `navigate` refuses anything but 127.0.0.1 URLs.
Every wait has a deadline and polls the page: no fixed sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Self

import aiohttp

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)
LOCAL = ("http://127.0.0.1:", "http://127.0.0.1/")
MEDIA_FLAGS = (
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
)
"""For WebRTC pages: fake camera and microphone granted without asking, host candidates without mDNS names."""


class BrowserError(Exception):
    """Chromium answered a command with an error, or a script in the page threw."""


def chromium_path() -> str | None:
    """The Chromium binary, or None when it is not installed."""
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


class Page:
    """One tab, over its own DevTools WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            future = self._waiting.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(BrowserError("the DevTools connection closed"))

    async def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        """One DevTools command; its `result`."""
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params or {}}))
        async with asyncio.timeout(timeout):
            answer = await future
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    async def navigate(self, url: str) -> None:
        if not url.startswith(LOCAL):
            raise ValueError(f"browser tests open 127.0.0.1 only, not {url!r}")
        answer = await self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise BrowserError(f"navigating to {url}: {answer['errorText']}")

    async def wait_until(self, expression: str, timeout: float = 10.0, interval: float = 0.05) -> Any:  # noqa: ASYNC109
        """Poll a JavaScript expression until it is truthy (its value) or the deadline passes (TimeoutError)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(BrowserError):  # a page being replaced has no context for a moment
                value = await self.evaluate(expression)
                if value:
                    return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} not true within {timeout} s (at {await self.url()})")
            await asyncio.sleep(interval)

    async def wait_for(self, selector: str, timeout: float = 10.0, text: str | None = None) -> None:  # noqa: ASYNC109
        """Wait until an element matches `selector` (and contains `text`, when given) in a fully loaded page."""
        element = f"document.querySelector({json.dumps(selector)})"
        check = f"document.readyState === 'complete' && {element} !== null"
        if text is not None:
            check += f" && {element}.textContent.includes({json.dumps(text)})"
        await self.wait_until(check, timeout)

    async def url(self) -> str:
        with contextlib.suppress(BrowserError, TimeoutError):
            return str(await self.evaluate("location.href"))
        return "?"

    async def text(self, selector: str = "body") -> str:
        return str(await self.evaluate(f"document.querySelector({json.dumps(selector)}).innerText"))

    async def click(self, selector: str) -> None:
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    async def type(self, selector: str, text: str) -> None:
        """Focus a field, clear it and type into it as a keyboard would (input events fire)."""
        await self.evaluate(f"(e => {{ e.focus(); e.select && e.select(); e.value = ''; }})({self._q(selector)})")
        await self.send("Input.insertText", {"text": text})

    async def fill(self, selector: str, value: str) -> None:
        """Set a field's value directly (date, time and select fields, which typing does not fill reliably)."""
        script = (
            f"(e => {{ e.value = {json.dumps(value)}; e.dispatchEvent(new Event('input', {{bubbles: true}}));"
            f" e.dispatchEvent(new Event('change', {{bubbles: true}})); return e.value; }})({self._q(selector)})"
        )
        if await self.evaluate(script) != value:
            raise BrowserError(f"{selector} did not take the value {value!r}")

    async def check(self, selector: str, on: bool = True) -> None:
        await self.evaluate(f"{self._q(selector)}.checked = {'true' if on else 'false'}")

    async def screenshot(self, path: Path, width: int = 390, height: int = 844) -> Path:
        """A PNG of the page at a phone's size (CSS pixels, the whole page's height)."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
        )
        full = int(await self.evaluate("document.documentElement.scrollHeight"))
        shot = await self.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True,
             "clip": {"x": 0, "y": 0, "width": width, "height": max(height, full), "scale": 1}},
        )  # fmt: skip
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
        return path

    @staticmethod
    def _q(selector: str) -> str:
        return f"document.querySelector({json.dumps(selector)})"

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class Browser:
    def __init__(
        self, process: asyncio.subprocess.Process, http: aiohttp.ClientSession, page: Page, port: int = 0
    ) -> None:
        self.process = process
        self.page = page
        self._http = http
        self._port = port
        self._pages: list[Page] = []

    async def new_page(self) -> Page:
        """Another tab in the same browser (lighter than another browser: one process for several users)."""
        async with self._http.put(f"http://127.0.0.1:{self._port}/json/new?about:blank") as response:
            target = await response.json()
        page = Page(await self._http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024))
        self._pages.append(page)
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        return page

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(
        cls,
        workdir: Path,
        timeout: float = 30.0,  # noqa: ASYNC109
        extra_flags: tuple[str, ...] = (),
    ) -> AsyncIterator[Self]:
        """Start Chromium with a fresh profile under `workdir`; close it (and wait for it) at the end.
        `extra_flags`: e.g. MEDIA_FLAGS for pages that use the camera and microphone."""
        binary = chromium_path()
        if binary is None:
            # Not a skip: the test command installs it (scripts/setup.sh --tests), so its absence is a set-up bug.
            raise FileNotFoundError("chromium is not installed: scripts/setup.sh --tests installs Debian's chromium")
        profile = workdir / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            binary,
            *FLAGS,
            *extra_flags,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--remote-allow-origins=http://127.0.0.1",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        http = aiohttp.ClientSession()
        page: Page | None = None
        try:
            port = await _devtools_port(profile / "DevToolsActivePort", process, timeout)
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
            page = Page(await http.ws_connect(url, max_msg_size=64 * 1024 * 1024))
            await page.send("Page.enable")
            await page.send("Runtime.enable")
            browser = cls(process, http, page, port)
            try:
                yield browser
            finally:
                for extra in browser._pages:
                    await extra.close()
        finally:
            if page is not None:
                await page.close()
            await http.close()
            if process.returncode is None:
                process.terminate()
                try:
                    async with asyncio.timeout(10):
                        await process.wait()
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _devtools_port(path: Path, process: asyncio.subprocess.Process, timeout: float) -> int:  # noqa: ASYNC109
    """Chromium writes its DevTools port (first line) to DevToolsActivePort in the profile once it listens."""
    deadline = time.monotonic() + timeout
    while True:
        if process.returncode is not None:
            raise BrowserError(f"chromium exited with {process.returncode}")
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int((await asyncio.to_thread(path.read_text)).splitlines()[0])
        if time.monotonic() > deadline:
            raise TimeoutError(f"chromium wrote no {path.name} within {timeout} s")
        await asyncio.sleep(0.05)
