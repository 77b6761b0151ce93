"""The agent's outbound link to the controller (see protocol/uplink.py for the messages).

The agent dials out and keeps one WebSocket open; the controller never connects in. On every connection the
agent sends a `Hello` with its full inventory, so the controller's view is resynced whatever happened while the
link was down; then it replays the camera updates the controller has not acknowledged, in order, and sends new
ones as they come. Updates carry a sequence number that only grows, across restarts too (`SeqAllocator`), so
the controller can drop the ones it already has. While the controller is away the agent keeps working: updates
wait in a bounded buffer (the oldest go first; the next Hello carries the current state anyway) and the link is
retried with exponential backoff and jitter. Live view: `publish_camera` and `stop_publishing` go to the
agent's publisher (`on_publish`, `on_stop_publishing`), and its `publish_state` messages come back through
`send_state()`, sent after the pending camera updates. Metrics: a `metrics_request` is answered with the agent's
own /metrics exposition (`metrics`), in a task of its own so a slow storage refresh does not hold the reader up.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from pydantic import ValidationError

from common.backoff import Backoff
from common.clock import Clock, SystemClock
from common.files import write_atomically
from protocol.camera import CameraReport
from protocol.uplink import (
    CONTROLLER_MESSAGE,
    MAX_FRAME_BYTES,
    METRICS_BODY_LIMIT,
    PROTOCOL_VERSION,
    UPLINK_PATH,
    Ack,
    ApproveCamera,
    CameraUpdate,
    Error,
    Hello,
    Message,
    MetricsRequest,
    MetricsResponse,
    PublishCamera,
    PublishState,
    Status,
    StopPublishing,
    Welcome,
)

logger = logging.getLogger(__name__)

SEQ_FILE = "uplink-seq"
SEQ_BLOCK = 1000
OUTBOX_LIMIT = 256
"""Live-view states waiting for the link (the oldest go first: the controller re-asks anyway)."""


class SeqAllocator:
    """Sequence numbers that keep growing across restarts without a disk write per number.

    Numbers are handed out from blocks of SEQ_BLOCK; the end of the current block is written to disk before any
    number from it is used, so after a crash the next run starts above every number already issued.
    """

    def __init__(self, state_dir: Path | None) -> None:
        self._path = None if state_dir is None else Path(state_dir) / SEQ_FILE
        self._next = 1
        self._limit = 1
        if self._path is not None:
            try:
                self._next = self._limit = int(self._path.read_text(encoding="ascii").strip() or "1")
            except FileNotFoundError:
                pass
            except ValueError:
                logger.warning("uplink: %s is damaged; starting sequence numbers from the clock", self._path)
                self._next = self._limit = int(os.path.getmtime(self._path) * 1000)

    @property
    def last(self) -> int:
        """The last number handed out (0 before the first)."""
        return self._next - 1

    def allocate(self) -> int:
        if self._next >= self._limit:
            self._limit = self._next + SEQ_BLOCK
            if self._path is not None:
                write_atomically(self._path, str(self._limit).encode("ascii"), durable=True)
        seq = self._next
        self._next += 1
        return seq


class UplinkRefused(Exception):
    """The controller refused this agent (bad or revoked token, unsupported version)."""


class Uplink:
    """Keeps the agent connected to the controller; `publish` queues a camera change for it."""

    def __init__(
        self,
        controller_url: str,
        token: str,
        *,
        hostname: str,
        version: str,
        snapshot: Callable[[], list[CameraReport]],
        on_approve: Callable[[str], Awaitable[None]],
        on_publish: Callable[[PublishCamera], Awaitable[None]] | None = None,
        on_stop_publishing: Callable[[str], Awaitable[None]] | None = None,
        metrics: Callable[[], Awaitable[bytes]] | None = None,
        clock: Clock | None = None,
        state_dir: Path | None = None,
        buffer_limit: int = 10_000,
        backoff: Backoff | None = None,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self._ws_url = _ws_url(controller_url) + UPLINK_PATH
        self._token = token
        self._hostname = hostname
        self._version = version
        self._snapshot = snapshot
        self._on_approve = on_approve
        self._on_publish = on_publish
        self._on_stop_publishing = on_stop_publishing
        self._metrics = metrics
        self._metrics_tasks: set[asyncio.Task[None]] = set()
        self._outbox: collections.deque[PublishState] = collections.deque(maxlen=OUTBOX_LIMIT)
        self._clock: Clock = clock or SystemClock()
        self._started_at = self._clock.now()
        self._seq = SeqAllocator(state_dir)
        self._pending: collections.deque[CameraUpdate] = collections.deque(maxlen=buffer_limit)
        self._wakeup = asyncio.Event()
        self._backoff = backoff or Backoff(base=1.0, cap=60.0)
        self._connect_timeout_s = connect_timeout_s
        self.online = asyncio.Event()
        """Set while a Welcome has been received on the current connection."""
        self.dropped_updates = 0
        self.connections = 0

    @property
    def pending(self) -> int:
        """Updates not yet acknowledged by the controller."""
        return len(self._pending)

    def publish(self, report: CameraReport) -> None:
        """Queue a camera change; it is sent now if the link is up, or after the next Hello otherwise."""
        if len(self._pending) == self._pending.maxlen:
            self.dropped_updates += 1
        self._pending.append(CameraUpdate(seq=self._seq.allocate(), at=self._clock.now(), camera=report))
        self._wakeup.set()

    def send_state(self, message: PublishState) -> None:
        """Queue a live-view state for the controller (sent now if the link is up, else after the next Hello)."""
        self._outbox.append(message)
        self._wakeup.set()

    async def run(self) -> None:
        """Connect, serve the link, reconnect after any failure; returns only when cancelled."""
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    await self._connect_and_serve(http)
                except asyncio.CancelledError:
                    raise
                except UplinkRefused as exc:
                    logger.error("uplink: the controller refused this agent: %s", exc)
                    # A refusal will not heal by itself soon: wait long, but keep trying (the token may be
                    # restored, or the controller may have been restored from an older backup).
                    self._backoff.failures = max(self._backoff.failures, 16)
                except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError) as exc:
                    logger.info("uplink: controller unreachable (%s); retrying", exc or type(exc).__name__)
                finally:
                    self.online.clear()
                delay = self._backoff.next_delay()
                logger.debug("uplink: next attempt in %.1f s", delay)
                await self._clock.sleep(delay)

    async def _connect_and_serve(self, http: aiohttp.ClientSession) -> None:
        try:
            ws = await asyncio.wait_for(
                http.ws_connect(
                    self._ws_url,
                    headers={"Authorization": f"Bearer {self._token}"},
                    heartbeat=20.0,
                    max_msg_size=MAX_FRAME_BYTES,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                ),
                self._connect_timeout_s,
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                raise UplinkRefused(f"HTTP {exc.status}") from None
            raise
        async with ws:
            self.connections += 1
            hello = Hello(
                version=PROTOCOL_VERSION,
                agent_version=self._version,
                hostname=self._hostname,
                started_at=self._started_at,
                seq=self._seq.last,
                cameras=self._snapshot(),
            )
            await _send(ws, hello)
            welcome = await asyncio.wait_for(self._receive_welcome(ws), self._connect_timeout_s)
            self._acknowledge(welcome.acked_seq)
            self._backoff.reset()
            self.online.set()
            logger.info("uplink: connected to the controller as agent %s", welcome.agent_id)
            for ref in welcome.approved:
                await self._on_approve(ref)
            reader = asyncio.create_task(self._read(ws), name="uplink-reader")
            status = asyncio.create_task(self._send_status(ws, welcome.status_interval_s), name="uplink-status")
            try:
                await self._send_updates(ws, (reader, status))
            finally:
                answers = list(self._metrics_tasks)
                for task in (reader, status, *answers):
                    task.cancel()
                await asyncio.gather(reader, status, *answers, return_exceptions=True)

    async def _receive_welcome(self, ws: aiohttp.ClientWebSocketResponse) -> Welcome:
        message = await _receive(ws)
        if isinstance(message, Welcome):
            return message
        if isinstance(message, Error):
            raise UplinkRefused(message.message)
        raise ConnectionError(f"expected welcome, got {message.type if message else 'close'}")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            message = await _receive(ws)
            if message is None:
                return
            if isinstance(message, Ack):
                self._acknowledge(message.seq)
            elif isinstance(message, ApproveCamera):
                await self._on_approve(message.endpoint_ref)
            elif isinstance(message, PublishCamera):
                if self._on_publish is None:
                    self.send_state(
                        PublishState(request_id=message.request_id, endpoint_ref=message.endpoint_ref,
                                     state="failed", reason="this agent does not publish live view")
                    )  # fmt: skip
                else:
                    await self._on_publish(message)
            elif isinstance(message, StopPublishing):
                if self._on_stop_publishing is not None:
                    await self._on_stop_publishing(message.endpoint_ref)
            elif isinstance(message, MetricsRequest):
                task = asyncio.create_task(self._answer_metrics(ws, message.request_id), name="uplink-metrics")
                self._metrics_tasks.add(task)
                task.add_done_callback(self._metrics_tasks.discard)
            elif isinstance(message, Error):
                if message.fatal:
                    raise UplinkRefused(message.message)
                logger.warning("uplink: the controller reports: %s", message.message)
            else:
                logger.warning("uplink: unexpected %s from the controller", message.type)

    async def _send_updates(
        self, ws: aiohttp.ClientWebSocketResponse, companions: tuple[asyncio.Task[None], ...]
    ) -> None:
        """Send unacknowledged updates in order until the link ends (a companion task finishing ends it)."""
        sent_upto = 0
        while True:
            self._wakeup.clear()
            for update in list(self._pending):
                if update.seq > sent_upto:
                    await _send(ws, update)
                    sent_upto = update.seq
            while self._outbox:
                await _send(ws, self._outbox.popleft())
            waiter = asyncio.ensure_future(self._wakeup.wait())
            try:
                done, _ = await asyncio.wait({waiter, *companions}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            for task in companions:
                if task in done:
                    error = task.exception()
                    raise error if error is not None else ConnectionError("the controller closed the link")

    async def _send_status(self, ws: aiohttp.ClientWebSocketResponse, interval_s: float) -> None:
        while True:
            counts = collections.Counter(str(report.state) for report in self._snapshot())
            status = Status(
                at=self._clock.now(),
                uptime_s=max(0.0, (self._clock.now() - self._started_at).total_seconds()),
                cameras_by_state=dict(counts),
            )
            await _send(ws, status)
            await self._clock.sleep(interval_s)

    async def _answer_metrics(self, ws: aiohttp.ClientWebSocketResponse, request_id: str) -> None:
        try:
            exposition = b"" if self._metrics is None else await self._metrics()
        except Exception:  # no answer: the controller's scrape times out and Prometheus marks the agent down
            logger.exception("uplink: could not render the metrics")
            return
        frame, truncated = await asyncio.to_thread(metrics_frame, request_id, exposition)  # up to MiBs of JSON
        if truncated:
            logger.warning("uplink: the metrics exposition is over %s bytes; sending it cut", METRICS_BODY_LIMIT)
        try:
            await ws.send_str(frame)
        except ConnectionError as exc:
            logger.debug("uplink: could not answer a metrics request: %s", exc)

    def _acknowledge(self, seq: int) -> None:
        while self._pending and self._pending[0].seq <= seq:
            self._pending.popleft()


async def _send(ws: aiohttp.ClientWebSocketResponse, message: Message) -> None:
    await ws.send_str(message.model_dump_json())


async def _receive(
    ws: aiohttp.ClientWebSocketResponse,
) -> Welcome | Ack | ApproveCamera | PublishCamera | StopPublishing | MetricsRequest | Error | None:
    """The next controller message, or None when the link closes. Malformed messages are logged and skipped."""
    while True:
        msg = await ws.receive()
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            return None
        if msg.type == aiohttp.WSMsgType.ERROR:
            raise ConnectionError(f"uplink error: {ws.exception()}")
        if msg.type != aiohttp.WSMsgType.TEXT:
            logger.warning("uplink: ignoring a non-text frame from the controller")
            continue
        try:
            return CONTROLLER_MESSAGE.validate_json(msg.data)
        except ValidationError as exc:
            logger.warning("uplink: ignoring a malformed controller message: %s", exc.errors()[0]["msg"])


def cut_exposition(body: bytes, limit: int = METRICS_BODY_LIMIT) -> tuple[str, bool]:
    """The exposition as text, cut after the last whole line that fits in `limit` bytes; True if cut."""
    if len(body) <= limit:
        return body.decode("utf-8", errors="replace"), False
    end = body.rfind(b"\n", 0, limit)
    return body[: end + 1].decode("utf-8", errors="replace"), True


def metrics_frame(request_id: str, exposition: bytes) -> tuple[str, bool]:
    """The metrics_response frame, its body cut further while the JSON (escapes can grow it) is over a frame;
    True if the body was cut."""
    limit = METRICS_BODY_LIMIT
    while True:
        body, truncated = cut_exposition(exposition, limit)
        frame = MetricsResponse(request_id=request_id, body=body, truncated=truncated).model_dump_json()
        if len(frame.encode("utf-8")) <= MAX_FRAME_BYTES or not body:
            return frame, truncated
        limit = len(body.encode("utf-8")) // 2


def _ws_url(controller_url: str) -> str:
    url = controller_url.rstrip("/")
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


def default_hostname() -> str:
    return socket.gethostname()
