"""One camera's ONVIF HTTP server: SOAP device and media services, the snapshot, and the HTTP quirks.

Quirks handled here: no_auth, slow_reply_s, trickle_bytes_per_s, hostile_soap, refuse_connections (accept and
close at once); broken_get_services lives in the device service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from simulator.onvif import device, hostile, media
from simulator.onvif.context import DEVICE_PATH, MEDIA_PATH, Operation, ServiceContext
from simulator.onvif.httpauth import HttpAuthChecker
from simulator.onvif.snapshot import snapshot_jpeg
from simulator.onvif.soap import CONTENT_TYPE, MAX_REQUEST_BYTES, SoapFault, SoapParseError, envelope, parse_request
from simulator.onvif.wsse import AuthError, DigestVerifier, read_token

logger = logging.getLogger(__name__)

_TRICKLE_TICK_S = 0.1
_SHUTDOWN_TIMEOUT_S = 0.5
MAX_RECORDED_REQUESTS = 10_000
"""The request record keeps the latest this many (a long demo run must not grow without bound)."""
"""On stop, requests still running (slow, trickled, huge replies) get this long, then are cancelled."""


@dataclass(frozen=True)
class SeenRequest:
    """One request the camera received, recorded for tests."""

    service: str
    """'device', 'media' or 'snapshot'."""
    operation: str
    """The SOAP operation (or the snapshot path); '' when the request could not be parsed."""
    authenticated: bool
    status: int


class OnvifHttpServer:
    """Serves one camera's ONVIF services on spec.host:spec.http_port."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        spec = ctx.spec
        self._quirks = spec.quirks
        self._verifier = DigestVerifier(spec.username, spec.password, camera_time=ctx.camera_time)
        self._http_auth = HttpAuthChecker(spec.username, spec.password, realm=f"{spec.model} {spec.name}")
        self._snapshots: dict[str, bytes] = {}
        self.requests: deque[SeenRequest] = deque(maxlen=MAX_RECORDED_REQUESTS)
        self._runner: web.AppRunner | None = None
        self._refuser: asyncio.Server | None = None

    async def start(self) -> None:
        spec = self._ctx.spec
        if self._quirks.refuse_connections:
            self._refuser = await asyncio.start_server(_close_at_once, spec.host, spec.http_port, reuse_address=True)
            return
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post(DEVICE_PATH, self._device)
        app.router.add_post(MEDIA_PATH, self._media)
        app.router.add_get("/snapshot/{token}.jpg", self._snapshot)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, spec.host, spec.http_port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        if self._refuser is not None:
            self._refuser.close()
            await self._refuser.wait_closed()
            self._refuser = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _device(self, request: web.Request) -> web.StreamResponse:
        return await self._soap(request, "device", device.OPERATIONS)

    async def _media(self, request: web.Request) -> web.StreamResponse:
        return await self._soap(request, "media", media.OPERATIONS)

    async def _soap(self, request: web.Request, service: str, operations: dict[str, Operation]) -> web.StreamResponse:
        if self._quirks.slow_reply_s > 0:
            await asyncio.sleep(self._quirks.slow_reply_s)
        operation = ""
        authenticated = False
        try:
            soap = parse_request(await request.read())
            operation = soap.operation
            handler = operations.get(operation)
            if handler is None:
                raise SoapFault("ter:ActionNotSupported", f"{operation[:64]} is not supported", code="env:Receiver")
            if operation not in device.UNAUTHENTICATED and not self._quirks.no_auth:
                try:
                    self._verifier.verify(read_token(soap.header))
                except AuthError as exc:
                    logger.debug("%s: %s refused: %s", self._ctx.spec.name, operation, exc)
                    raise SoapFault("ter:NotAuthorized", "Sender not Authorized", status=400) from None
                authenticated = True
            if operation not in device.UNAUTHENTICATED and self._quirks.hostile_soap in hostile.KINDS:
                self._record(service, operation, authenticated, 200)
                return await self._hostile(request, self._quirks.hostile_soap, operation, soap.namespace)
            body, status = envelope(handler(self._ctx, soap)), 200
        except SoapParseError as exc:
            logger.debug("%s: unparsable SOAP request: %s", self._ctx.spec.name, exc)
            body, status = SoapFault("ter:WellFormed", "The request is not a well-formed SOAP 1.2 envelope").body(), 400
        except SoapFault as exc:
            body, status = exc.body(), exc.status
        self._record(service, operation, authenticated, status)
        return await self._reply(request, body, status)

    def _record(self, service: str, operation: str, authenticated: bool, status: int) -> None:
        self.requests.append(SeenRequest(service, operation, authenticated, status))
        logger.debug("%s: %s %s -> %s", self._ctx.spec.name, service, operation, status)

    async def _reply(self, request: web.Request, body: bytes, status: int) -> web.StreamResponse:
        rate = self._quirks.trickle_bytes_per_s
        if rate <= 0:
            return web.Response(body=body, status=status, headers={"Content-Type": CONTENT_TYPE})
        response = web.StreamResponse(status=status, headers={"Content-Type": CONTENT_TYPE})
        response.enable_chunked_encoding()
        await response.prepare(request)
        step = max(1, int(rate * _TRICKLE_TICK_S))
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(body), step):
                await response.write(body[start : start + step])
                await asyncio.sleep(_TRICKLE_TICK_S)
            await response.write_eof()
        return response

    async def _hostile(self, request: web.Request, kind: str, operation: str, namespace: str) -> web.StreamResponse:
        logger.debug("%s: hostile %s reply to %s", self._ctx.spec.name, kind, operation)
        if kind != "huge":
            return await self._reply(request, hostile.small_body(kind, operation, namespace), 200)
        response = web.StreamResponse(status=200, headers={"Content-Type": CONTENT_TYPE})
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for chunk in hostile.huge_chunks(operation, namespace):
                await response.write(chunk)
            await response.write_eof()
        return response

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        profile = self._ctx.profile(token)
        if profile is None:
            self._record("snapshot", token, False, 404)
            raise web.HTTPNotFound()
        authenticated = False
        if not self._quirks.no_auth:
            if not self._http_auth.check(request.method, request.headers.get("Authorization")):
                self._record("snapshot", token, False, 401)
                return web.Response(status=401, headers={"WWW-Authenticate": self._http_auth.challenge()})
            authenticated = True
        jpeg = self._snapshots.get(token)
        if jpeg is None:
            jpeg = await snapshot_jpeg(self._ctx.spec.name, profile)
            self._snapshots[token] = jpeg
        self._record("snapshot", token, authenticated, 200)
        return web.Response(body=jpeg, content_type="image/jpeg")


async def _close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
