"""Live view at the agent: publish a camera to a media node over WHIP when the controller asks, without transcoding.

`Publisher` takes the uplink's `PublishCamera` and `StopPublishing` and runs one `Publication` per camera:

1. the camera's sub-stream (or the profile the command names) is opened over RTSP (`agents.live.source`), with the
   site's credentials put into the URL in that one place (never logged);
2. meanwhile a send-only peer connection is offered to the node's WHIP URL with the single-use token, H.264 forced
   in the codec preferences and no audio (`agents.live.whip`, `rtc`);
3. once the node's connection is up, the packets since the camera's last keyframe go first (a viewer waiting on
   the node starts at once), then every packet as it comes (`rtc.packet_track.PacketTrack`);
4. it ends on `StopPublishing` (DELETE of the WHIP session), when the node closes the session (the relay's idle
   close: the peer connection closes), or when the camera stream ends for good (reopened `reconnects` times).

Each step sends a `PublishState` up the uplink: `publishing`, `failed` with the reason, `stopped` with the bytes the
publication sent (counted by the DTLS transport: RTP, RTCP and retransmissions, as they leave the agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from agents.discovery.credentials import Login
from agents.live import whip
from agents.live.config import LiveConfig
from agents.live.source import EncodedPacket, RtspSource, SourceEnd
from agents.recording.cameras import camera_id, with_credentials
from common.backoff import Backoff
from common.clock import Clock, SystemClock
from protocol.camera import CameraReport, CameraState, StreamProfile
from protocol.uplink import PublishCamera, PublishState
from rtc.aiortc_adapter import VideoCodec, force_codecs, gate_retransmissions
from rtc.packet_track import PacketTrack

logger = logging.getLogger(__name__)

LoginFor = Callable[[str, str], Login]
"""(endpoint_ref, address) -> the login to use (CredentialBook.for_device)."""
Snapshot = Callable[[], list[CameraReport]]
SendState = Callable[[PublishState], None]

TRACK_PACKETS = 512
FRAME_TICKS = 3600
"""One frame at 25 fps in 90 kHz ticks: the step between the last packet of a stream and the first of its reopening."""
DELETE_TIMEOUT_S = 5.0
STABLE_S = 30.0
"""A camera stream that ran this long before it ended gets its `reconnects` afresh."""


class PublishFailed(Exception):
    """A publication cannot start or cannot go on; the message is safe to send to the controller."""


class Ending(enum.StrEnum):
    STOPPED = "stopped"
    """Asked to stop (StopPublishing, the agent stopping, a newer command for the same camera)."""
    NODE_CLOSED = "node_closed"
    """The media node closed the session (no viewer left for its idle time) or the connection failed."""
    SOURCE_ENDED = "source_ended"
    """The camera stream ended and could not be reopened."""


def choose_profile(report: CameraReport, token: str | None) -> StreamProfile:
    """The profile to publish: the one named, else the sub-stream, else the main stream (RTSP, H.264 only)."""
    usable = [p for p in report.profiles if p.stream_uri and p.stream_uri.startswith("rtsp")]
    if token is not None:
        found = next((p for p in usable if p.token == token), None)
        if found is None:
            raise PublishFailed(f"the camera has no RTSP profile {token!r}")
    else:
        found = next((p for p in usable if p.role == "sub"), None) or next(
            (p for p in usable if p.role == "main"), None
        )
        if found is None:
            raise PublishFailed("the camera has no RTSP stream")
    if found.encoding.upper() not in ("H264", "H.264"):
        raise PublishFailed(f"the profile is {found.encoding}; live view forwards H.264 only")
    return found


@dataclass(frozen=True)
class Target:
    """What one publication reads: the camera's name for logs and the URL with the login (never logged)."""

    name: str
    url: str


class Publication:
    """One camera published to one media node; `run()` returns when it has ended, having sent its last state."""

    def __init__(
        self,
        command: PublishCamera,
        target: Target,
        config: LiveConfig,
        send_state: SendState,
        http: aiohttp.ClientSession,
        *,
        clock: Clock,
    ) -> None:
        self.command = command
        self._target = target
        self._config = config
        self._send_state = send_state
        self._http = http
        self._clock = clock
        self._stop = asyncio.Event()
        self._closed = asyncio.Event()
        self._connected = asyncio.Event()
        self._pc: RTCPeerConnection | None = None
        self._track: PacketTrack | None = None
        self._source: RtspSource | None = None
        self._reader: asyncio.Task[SourceEnd] | None = None
        self._pts_offset = 0
        self._last_pts = 0
        self._need_keyframe = True
        self.packets_sent = 0
        self.payload_bytes = 0
        """Bytes of H.264 handed to the sender (before RTP and SRTP)."""
        self.source_bytes = 0
        """Bytes read from the camera, over every reopening."""
        self.ending: Ending | None = None
        self.resource_url: str | None = None
        self.publishing = asyncio.Event()

    @property
    def endpoint_ref(self) -> str:
        return self.command.endpoint_ref

    def stop(self) -> None:
        self._stop.set()

    async def bytes_sent(self) -> int:
        """Bytes this publication has sent to the node so far (the DTLS transport's count)."""
        pc = self._pc
        if pc is None:
            return 0
        total = 0
        for transceiver in pc.getTransceivers():
            report = await transceiver.sender.getStats()
            for stats in report.values():
                if getattr(stats, "type", "") == "transport":
                    total = max(total, int(getattr(stats, "bytesSent", 0) or 0))
        return total

    async def run(self) -> Ending:
        name = self._target.name
        reason = ""
        try:
            ending = await self._run()
            if ending is Ending.SOURCE_ENDED:
                reason = self._source_reason()
        except PublishFailed as exc:
            reason = str(exc)
            ending = Ending.SOURCE_ENDED
        except Exception as exc:
            logger.exception("%s: live publication failed", name)
            reason = f"internal error: {type(exc).__name__}"
            ending = Ending.SOURCE_ENDED
        finally:
            sent = await self._close()
        self.ending = ending
        if ending is Ending.SOURCE_ENDED:
            logger.warning("%s: live publication failed: %s", name, reason)
            self._state("failed", reason, sent)
        else:
            why = "stopped" if ending is Ending.STOPPED else "the media node closed the session"
            logger.info("%s: live publication ended (%s), %d bytes sent", name, why, sent)
            self._state("stopped", why, sent)
        return ending

    # ------------------------------------------------------------------------------------------------------------

    async def _run(self) -> Ending:
        source = self._open_source()
        try:
            await self._negotiate()
            await self._wait_connected()
            self.publishing.set()
            self._state("publishing", "", 0)
            logger.info("%s: publishing to %s", self._target.name, self.command.whip_url)
            pump = asyncio.create_task(self._pump(source), name=f"live-pump-{self._target.name}")
            stop = asyncio.create_task(self._stop.wait())
            closed = asyncio.create_task(self._closed.wait())
            try:
                done, _ = await asyncio.wait({pump, stop, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (pump, stop, closed):
                    task.cancel()
                await asyncio.gather(pump, stop, closed, return_exceptions=True)
            if stop in done:
                return Ending.STOPPED
            if closed in done:
                return Ending.NODE_CLOSED
            return Ending.SOURCE_ENDED
        finally:
            if self._source is not None:
                self._source.stop()
            if self._reader is not None:
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reader

    def _open_source(self) -> RtspSource:
        """A new camera connection, read by a task of its own (`self._reader`) into the source's queue."""
        config = self._config
        source = self._source = RtspSource(
            self._target.url,
            transport=config.transport,
            open_timeout_s=config.open_timeout_s,
            stall_timeout_s=config.stall_timeout_s,
            name=self._target.name,
        )
        self._reader = asyncio.create_task(source.run(), name=f"live-source-{self._target.name}")
        return source

    async def _negotiate(self) -> None:
        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self.command.ice_servers
        ]
        pc = self._pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))  # always an explicit list
        track = self._track = PacketTrack("video", max_packets=TRACK_PACKETS)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        force_codecs(transceiver, VideoCodec.H264)
        gate_retransmissions(transceiver.sender)  # a lossy uplink must not turn into a resend storm

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            if state == "connected":
                self._connected.set()
            elif state in ("failed", "closed"):
                self._closed.set()

        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        try:
            session = await whip.publish(
                self._http, self.command.whip_url, self.command.token, offer, self._config.http_timeout_s
            )
        except whip.WhipRefused as exc:
            raise PublishFailed(f"the media node refused the publication: {exc}") from None
        self.resource_url = session.resource_url
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=session.answer, type="answer"))
        except ValueError as exc:
            raise PublishFailed(f"the media node's answer is unusable: {exc}") from None

    async def _wait_connected(self) -> None:
        connected = asyncio.create_task(self._connected.wait())
        gone = asyncio.create_task(self._closed.wait())
        stop = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                {connected, gone, stop}, timeout=self._config.connect_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (connected, gone, stop):
                task.cancel()
        if connected in done:
            return
        if stop in done:
            raise PublishFailed("stopped before the media node's connection was up")
        if gone in done:
            raise PublishFailed("the connection to the media node failed (ICE or DTLS)")
        raise PublishFailed(f"no connection to the media node within {self._config.connect_timeout_s:g} s")

    async def _pump(self, source: RtspSource) -> None:
        """Camera packets into the track until the camera stream ends for good (reopened `reconnects` times)."""
        backoff = Backoff(base=0.5, cap=10.0)
        attempts = 0
        opened = self._clock.monotonic()
        for packet in source.backlog():
            self._push(packet)
        while True:
            item = await source.get()
            if isinstance(item, EncodedPacket):
                self._push(item)
                continue
            self.source_bytes += source.bytes_read
            if self._clock.monotonic() - opened >= STABLE_S:
                attempts = 0  # it ran well for a while: this end is a new incident, not the same one again
                backoff.reset()
            if item.reason in ("unsupported", "stopped") or attempts >= self._config.reconnects:
                return
            attempts += 1
            delay = backoff.next_delay()
            logger.info("%s: live source %s (%s); reopening in %.1f s", self._target.name, item.reason, item.detail,
                        delay)  # fmt: skip
            await self._clock.sleep(delay)
            self._pts_offset = self._last_pts + FRAME_TICKS
            self._need_keyframe = True
            if self._reader is not None:
                await asyncio.gather(self._reader, return_exceptions=True)  # it has ended: its end was queued
            source = self._open_source()
            opened = self._clock.monotonic()

    def _push(self, packet: EncodedPacket) -> None:
        track = self._track
        if track is None:
            return
        if self._need_keyframe and not packet.keyframe:
            return
        pts = self._pts_offset + packet.pts
        if track.push(packet.data, pts):
            self._need_keyframe = False
            self._last_pts = pts
            self.packets_sent += 1
            self.payload_bytes += len(packet.data)
        else:
            self._need_keyframe = True  # the sender fell behind: start again at a keyframe

    def _source_reason(self) -> str:
        end = self._source.end if self._source is not None else None
        if end is None:
            return "the camera stream ended"
        detail = f": {end.detail}" if end.detail else ""
        return f"camera stream {end.reason}{detail}"

    async def _close(self) -> int:
        """DELETE the session (unless the node closed it), close the connection; the bytes sent."""
        sent = 0
        with contextlib.suppress(Exception):
            sent = await self.bytes_sent()
        if self._source is not None:
            self.source_bytes = max(self.source_bytes, self._source.bytes_read)
            self._source.stop()
        if self.resource_url is not None and not self._closed.is_set():
            await whip.delete(self._http, self.resource_url, DELETE_TIMEOUT_S)
        if self._track is not None:
            self._track.end()
        if self._pc is not None:
            await self._pc.close()
        return sent

    def _state(self, state: Literal["publishing", "failed", "stopped"], reason: str, sent: int) -> None:
        message = PublishState(
            request_id=self.command.request_id,
            endpoint_ref=self.command.endpoint_ref,
            state=state,
            reason=reason[:512],
            bytes_sent=sent,
        )
        try:
            self._send_state(message)
        except Exception:
            logger.exception("%s: could not queue the publish state", self._target.name)


class Publisher:
    """Publications by camera; `publish()` and `stop()` are the uplink's handlers; `run()` owns the tasks."""

    def __init__(
        self,
        config: LiveConfig,
        snapshot: Snapshot,
        login_for: LoginFor,
        send_state: SendState,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._config = config
        self._snapshot = snapshot
        self._login_for = login_for
        self._send_state = send_state
        self._clock: Clock = clock or SystemClock()
        self._active: dict[str, tuple[Publication, asyncio.Task[Any]]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._stop = asyncio.Event()
        self.started = asyncio.Event()
        self.finished: list[Publication] = []
        """Ended publications, latest last (the most recent 100), for tests and /healthz."""
        self.states: dict[str, int] = {"publishing": 0, "failed": 0, "stopped": 0}
        """States sent up the uplink since the agent started (for /metrics)."""
        self._ended_payload_bytes = 0

    def payload_bytes(self) -> int:
        """H.264 bytes handed to senders since the agent started, ended publications included."""
        return self._ended_payload_bytes + sum(pub.payload_bytes for pub, _ in self._active.values())

    def _emit(self, message: PublishState) -> None:
        self.states[message.state] = self.states.get(message.state, 0) + 1
        self._send_state(message)

    def active(self) -> dict[str, Publication]:
        return {ref: pub for ref, (pub, _) in self._active.items()}

    async def run(self) -> None:
        """Run publications until `shutdown()` or cancellation; every publication is ended on the way out."""
        async with aiohttp.ClientSession() as http:
            self._http = http
            try:
                async with asyncio.TaskGroup() as tasks:
                    self._tasks = tasks
                    self.started.set()
                    await self._stop.wait()
                    for publication, _ in list(self._active.values()):
                        publication.stop()
            finally:
                self._tasks = None
                self._http = None

    def shutdown(self) -> None:
        self._stop.set()

    async def publish(self, command: PublishCamera) -> None:
        """Start publishing `command.endpoint_ref` (returns at once; a publication already running for the camera
        is stopped first, in the new publication's task)."""
        if not self._config.enabled:
            self._refuse(command, "live view is disabled on this agent")
            return
        tasks = self._tasks
        if tasks is None:
            self._refuse(command, "the agent is not ready to publish")
            return
        tasks.create_task(self._start(command), name=f"live-start-{command.request_id}")

    async def stop(self, endpoint_ref: str) -> None:
        """End the camera's publication, if any (returns at once; its `stopped` state follows)."""
        entry = self._active.get(endpoint_ref)
        if entry is not None:
            entry[0].stop()

    async def _start(self, command: PublishCamera) -> None:
        previous = self._active.pop(command.endpoint_ref, None)
        if previous is not None:
            previous[0].stop()
            await asyncio.gather(previous[1], return_exceptions=True)
        http = self._http
        if http is None or self._stop.is_set():
            self._refuse(command, "the agent is stopping")
            return
        if len(self._active) >= self._config.max_publications:
            self._refuse(command, f"this agent publishes at most {self._config.max_publications} cameras at once")
            return
        try:
            target = self._target(command)
        except PublishFailed as exc:
            self._refuse(command, str(exc))
            return
        publication = Publication(command, target, self._config, self._emit, http, clock=self._clock)
        task = asyncio.current_task()
        assert task is not None
        self._active[command.endpoint_ref] = (publication, task)
        try:
            await publication.run()
        finally:
            self._done(publication)

    def _done(self, publication: Publication) -> None:
        entry = self._active.get(publication.endpoint_ref)
        if entry is not None and entry[0] is publication:
            del self._active[publication.endpoint_ref]
        self.finished = [*self.finished[-99:], publication]
        self._ended_payload_bytes += publication.payload_bytes

    def _target(self, command: PublishCamera) -> Target:
        report = next((r for r in self._snapshot() if r.endpoint_ref == command.endpoint_ref), None)
        if report is None:
            raise PublishFailed("the agent does not know this camera")
        if report.state is not CameraState.READY:
            raise PublishFailed(f"the camera is {report.state.value}: {report.reason}")
        profile = choose_profile(report, command.profile_token)
        assert profile.stream_uri is not None
        login = self._login_for(report.endpoint_ref, report.address)
        suffix = "" if profile.role == "main" else f".{profile.role}"
        return Target(camera_id(report.endpoint_ref) + suffix, with_credentials(profile.stream_uri, login))

    def _refuse(self, command: PublishCamera, reason: str) -> None:
        logger.warning("live publication of %s refused: %s", command.endpoint_ref, reason)
        self._emit(
            PublishState(
                request_id=command.request_id, endpoint_ref=command.endpoint_ref, state="failed", reason=reason
            )
        )
