"""The parent live view's flow: authorize, place the camera's relay on a media node, have the agent publish it
if it does not yet, record the view, and hand the browser a viewer token; end views (by the viewer, by a
revocation, when the node stops playing them) and tell the node.

Every refusal is audited (`live.refuse`, with the reason and the identifier asked for) and every view is a
`live_sessions` row with `live.start` and `live.end` audit entries (parent, child, camera, device, address,
start, end, why it ended).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.clock import Clock
from controller import audit
from controller.config import ControllerConfig
from controller.db.models import Agent
from controller.live import authorize
from controller.live.authorize import Grant, Reason, Refusal
from controller.live.metrics import LiveMetrics
from controller.live.models import LiveSession
from controller.live.publications import Publication, Publications, PublishError
from controller.medianodes import MediaNodes, NoMediaNode
from controller.medianodes.control import ControlError
from controller.uplink.hub import Hub
from protocol.camera import CameraState
from protocol.media import WHEP_PATH, CloseRequest, IceServer, TokenKind, camera_room

logger = logging.getLogger(__name__)

DEVICE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
START_GRACE = timedelta(seconds=30)
"""A view the node has never listed as playing after this long is ended (`never_played`)."""
NODE_LOST_GRACE_S = 10.0
"""A view on a node that has not reported for this long (or, after a controller restart, has not reported since
the restart) is ended (`media_node_lost`)."""
SYSTEM = "system:live"


@dataclass(frozen=True)
class Viewer:
    """Who asks, from where: for the checks and the audit record."""

    user_id: int
    actor: str
    address: str | None
    user_agent: str


@dataclass(frozen=True)
class Started:
    session_id: int
    key: str
    camera_id: int
    child_id: int
    label: str
    room: str
    node_id: str
    node_url: str
    """The node's public URL (whep-player.js takes it with the room)."""
    whep_url: str
    token: str
    expires_at: datetime
    ice_servers: list[IceServer]


@dataclass
class _Gate:
    """One parent's watch requests, one at a time; forgotten when none waits."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _identifier(value: str) -> str:
    """What was asked for, safe for the audit log (printable, bounded)."""
    return "".join(ch for ch in value if ch.isprintable())[:80]


class LiveService:
    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        clock: Clock,
        nodes: MediaNodes,
        hub: Hub,
        config: ControllerConfig,
        metrics: LiveMetrics,
    ) -> None:
        self._db = db
        self.metrics = metrics
        self._clock = clock
        self.nodes = nodes
        self.publications = Publications(nodes, hub, clock)
        self._hub = hub
        self.max_devices = config.live_max_devices
        self._idle_close_s = config.live_idle_close_s
        self._seen: dict[str, datetime] = {}
        self._idle_since: dict[int, float] = {}
        self._user_gates: dict[int, _Gate] = {}
        self._started_mono = clock.monotonic()
        self._last_open: list[LiveSession] = []
        """The views open at the last successful pass: what `fail_closed` closes when the database is gone."""

    # -- asking to watch ---------------------------------------------------------------------------------------
    async def watch(self, viewer: Viewer, camera: str, child_id: int | None, device: str) -> Started:
        """Authorize and start a view; raises Refusal (already audited). One request per parent at a time in this
        process, so two devices asking at once cannot both take the last device slot."""
        gate = self._user_gates.setdefault(viewer.user_id, _Gate())
        gate.users += 1
        try:
            async with gate.lock:
                return await self._watch(viewer, camera, child_id, device)
        finally:
            gate.users -= 1
            if gate.users == 0:
                self._user_gates.pop(viewer.user_id, None)

    async def _watch(self, viewer: Viewer, camera: str, child_id: int | None, device: str) -> Started:
        now = self._clock.now()
        refusal: Refusal | None = None
        replaced: list[LiveSession] = []
        async with self._db.begin() as session:
            try:
                if not DEVICE.match(device):
                    raise Refusal(Reason.BAD_DEVICE, "device: 8 to 64 of A-Z a-z 0-9 _ -")
                camera_id = await authorize.resolve_camera(session, camera)
                if camera_id is None:
                    raise Refusal(Reason.UNKNOWN_CAMERA, "no such camera")
                grant = await authorize.check(session, viewer.user_id, camera_id, child_id, now)
                agent = await self._available(session, grant)
                replaced = await self._check_devices(session, viewer.user_id, device, camera_id)
                try:
                    node = self.nodes.registry.place(camera_room(camera_id), 1)
                except NoMediaNode:
                    raise Refusal(Reason.NO_MEDIA_NODE, "no media node is available", camera_id=camera_id) from None
                for old in replaced:
                    self._end_row(session, old, "replaced", now, SYSTEM)
                row = LiveSession(
                    key=secrets.token_hex(16), user_id=viewer.user_id, child_id=grant.child_id,
                    class_id=grant.class_id, camera_id=camera_id, unit_id=grant.unit_id, device=device,
                    address=viewer.address, user_agent=viewer.user_agent[:200], node_id=node.node_id,
                    started_at=now, end_reason="",
                )  # fmt: skip
                session.add(row)
                await session.flush()
                audit.record(
                    session, at=now, actor=viewer.actor, action="live.start", target=f"camera:{camera_id}",
                    details={"session": row.id, "child_id": grant.child_id, "class_id": grant.class_id,
                             "device": device, "node": node.node_id},
                    address=viewer.address,
                )  # fmt: skip
            except Refusal as exc:
                refusal = exc
                self._audit_refusal(session, viewer, camera, device, child_id, exc, now)
        if refusal is not None:
            self.metrics.refused.labels(refusal.reason.value).inc()
            raise refusal
        self.metrics.started.inc()
        await self._close_at_nodes(replaced, "replaced by a new view on the same device")
        camera_id = grant.camera.id
        try:
            await self.publications.ensure(camera_id, agent.id, grant.camera.endpoint_ref, node)
        except PublishError as exc:
            await self.end([row.id], Reason.CAMERA_UNAVAILABLE.value, SYSTEM)
            refusal = Refusal(Reason.CAMERA_UNAVAILABLE, str(exc), camera_id=camera_id)
            async with self._db.begin() as session:
                self._audit_refusal(session, viewer, camera, device, child_id, refusal, now)
            self.metrics.refused.labels(refusal.reason.value).inc()
            raise refusal from None
        room = camera_room(camera_id)
        node_url = node.report.public_url.rstrip("/")
        ttl = self.nodes.token_ttl
        token = self.nodes.tokens.issue(
            kind=TokenKind.VIEW, node=node.node_id, room=room, subject=f"user:{viewer.user_id}", ttl=ttl,
            session=row.key, device=device,
        )  # fmt: skip
        return Started(
            session_id=row.id, key=row.key, camera_id=camera_id, child_id=grant.child_id, label=grant.label,
            room=room, node_id=node.node_id, node_url=node_url, whep_url=node_url + WHEP_PATH.format(room=room),
            token=token, expires_at=now + ttl, ice_servers=self.nodes.ice_servers(f"user:{viewer.user_id}"),
        )  # fmt: skip

    async def _available(self, session: AsyncSession, grant: Grant) -> Agent:
        camera = grant.camera
        agent = await session.get(Agent, camera.agent_id)
        if agent is None or agent.revoked_at is not None or self._hub.get(agent.id) is None:
            raise Refusal(Reason.CAMERA_UNAVAILABLE, "the school's agent is offline", camera_id=camera.id)
        if camera.state is not CameraState.READY or camera.gone_at is not None:
            raise Refusal(Reason.CAMERA_UNAVAILABLE, "the camera is not working now", camera_id=camera.id)
        return agent

    async def _check_devices(
        self, session: AsyncSession, user_id: int, device: str, camera_id: int
    ) -> list[LiveSession]:
        """Refuse a device beyond the limit; the views this device already has of this camera are replaced."""
        query = select(LiveSession).where(LiveSession.user_id == user_id, LiveSession.ended_at.is_(None))
        open_views = list((await session.execute(query)).scalars())
        others = {v.device for v in open_views if v.device != device}
        if len(others) >= self.max_devices:
            raise Refusal(Reason.DEVICE_LIMIT, f"you are watching on {len(others)} devices already")
        return [v for v in open_views if v.device == device and v.camera_id == camera_id]

    def _audit_refusal(
        self,
        session: AsyncSession,
        viewer: Viewer,
        camera: str,
        device: str,
        child_id: int | None,
        refusal: Refusal,
        now: datetime,
    ) -> None:
        target = f"camera:{refusal.camera_id}" if refusal.camera_id is not None else "camera:?"
        audit.record(
            session, at=now, actor=viewer.actor, action="live.refuse", target=target,
            details={"reason": refusal.reason.value, "asked": _identifier(camera), "device": _identifier(device),
                     "child_id": child_id},
            address=viewer.address,
        )  # fmt: skip
        logger.info("live view refused: %s asked %r: %s", viewer.actor, _identifier(camera), refusal.reason.value)

    # -- ending views ------------------------------------------------------------------------------------------
    def _end_row(self, session: AsyncSession, row: LiveSession, reason: str, now: datetime, actor: str) -> None:
        row.ended_at, row.end_reason = now, reason[:64]
        self._seen.pop(row.key, None)
        self.metrics.end(reason)
        audit.record(
            session, at=now, actor=actor, action="live.end", target=f"camera:{row.camera_id}",
            details={"session": row.id, "user_id": row.user_id, "child_id": row.child_id, "device": row.device,
                     "reason": reason, "started_at": row.started_at.isoformat(),
                     "seconds": int((now - row.started_at).total_seconds())},
            address=row.address,
        )  # fmt: skip

    async def end(self, session_ids: list[int], reason: str, actor: str, *, user_id: int | None = None) -> int:
        """End open views (of `user_id` only, when given) and tell their nodes; returns how many ended."""
        now = self._clock.now()
        async with self._db.begin() as session:
            query = select(LiveSession).where(LiveSession.id.in_(session_ids), LiveSession.ended_at.is_(None))
            if user_id is not None:
                query = query.where(LiveSession.user_id == user_id)
            rows = list((await session.execute(query)).scalars())
            for row in rows:
                self._end_row(session, row, reason, now, actor)
        await self._close_at_nodes(rows, reason)
        return len(rows)

    async def _close_at_nodes(self, rows: list[LiveSession], reason: str) -> None:
        by_node: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            by_node[row.node_id].append(row.key)
        await self._close_keys(by_node, reason[:200])  # a late node is told too: it may still be playing

    # -- the revocation watcher's pass ---------------------------------------------------------------------------
    async def recheck(self) -> int:
        """Re-authorize every open view and end what is no longer allowed or no longer playing; stop publications
        with no viewer left for `live_idle_close_s`. Returns how many views ended."""
        now = self._clock.now()
        ended: list[LiveSession] = []
        memo = authorize.Memo()
        async with self._db.begin() as session:
            rows = list((await session.execute(select(LiveSession).where(LiveSession.ended_at.is_(None)))).scalars())
            for row in rows:
                reason = await self._still(session, row, now, memo)
                if reason is not None:
                    self._end_row(session, row, reason, now, SYSTEM)
                    ended.append(row)
            strays = await self._strays(session, {row.key for row in rows if row not in ended})
        if ended:
            logger.info("live view: %s views ended by the watcher", len(ended))
            await self._close_at_nodes(ended, "no longer allowed or no longer playing")
        if strays:
            logger.warning("live view: %s ended or unknown views still playing at a node; closing", len(strays))
            await self._close_keys(strays, "this view has ended")
        self._last_open = [row for row in rows if row not in ended]
        self._measure()
        await self._stop_idle({row.camera_id for row in self._last_open})
        return len(ended)

    async def _strays(self, session: AsyncSession, open_keys: set[str]) -> dict[str, list[str]]:
        """Views a node plays that are not open here: ended ones (a token issued before a revocation and used
        after it) or ones this controller never issued. node id -> session keys. A key that became open after
        this pass read the open views is left alone."""
        listed = {
            key: node.node_id
            for node in self.nodes.registry.fresh()
            for key in node.report.view_sessions
            if key not in open_keys
        }
        if not listed:
            return {}
        query = select(LiveSession.key).where(LiveSession.key.in_(list(listed)), LiveSession.ended_at.is_(None))
        opened_since = set((await session.execute(query)).scalars())
        strays: dict[str, list[str]] = defaultdict(list)
        for key, node_id in listed.items():
            if key not in opened_since:
                strays[node_id].append(key)
        return strays

    async def _close_keys(self, by_node: dict[str, list[str]], reason: str) -> None:
        for node_id, keys in by_node.items():
            node = self.nodes.registry.known(node_id)
            if node is None:
                continue
            try:
                await self.nodes.control.close(
                    node_id, node.report.control_url, CloseRequest(view_sessions=keys, reason=reason)
                )
            except ControlError as exc:
                logger.warning("media node %s: could not close %s views: %s", node_id, len(keys), exc)

    async def fail_closed(self) -> int:
        """The rights of open views cannot be checked (the database fails): close them at their nodes rather
        than let them play unchecked. Their rows are ended by the next pass that works (the node no longer
        lists them). Returns how many were closed."""
        views, self._last_open = self._last_open, []
        if views:
            logger.error("live view: rights cannot be checked; closing %s open views at their nodes", len(views))
            await self._close_at_nodes(views, "access could not be checked")
        return len(views)

    async def _still(self, session: AsyncSession, row: LiveSession, now: datetime, memo: authorize.Memo) -> str | None:
        """None while the view may go on; else why it ends."""
        if row.camera_id is None:
            return Reason.UNKNOWN_CAMERA.value
        try:
            await authorize.check(session, row.user_id, row.camera_id, row.child_id, now, memo)
        except Refusal as exc:
            return exc.reason.value
        node = self.nodes.registry.get(row.node_id)
        if node is None:
            known = self.nodes.registry.known(row.node_id)
            last = known.received_mono if known is not None else self._started_mono
            return "media_node_lost" if self._clock.monotonic() - last > NODE_LOST_GRACE_S else None
        if row.key in node.report.view_sessions:
            self._seen[row.key] = node.received_at
            if row.seen_at is None:
                row.seen_at = node.received_at
            return None
        seen = self._seen.get(row.key, row.seen_at)
        if seen is not None and node.received_at > seen:
            return "viewer_left"
        if seen is None and now - row.started_at > START_GRACE:
            return "never_played"
        return None

    async def _stop_idle(self, watched: set[int | None]) -> None:
        mono = self._clock.monotonic()
        for publication in self.publications.all():
            if publication.camera_id in watched:
                self._idle_since.pop(publication.camera_id, None)
                continue
            since = self._idle_since.setdefault(publication.camera_id, mono)
            if mono - since >= self._idle_close_s:
                self._idle_since.pop(publication.camera_id, None)
                await self.publications.stop(publication.camera_id)
                self.nodes.registry.release(publication.room)

    def _measure(self) -> None:
        self.metrics.open.set(len(self._last_open))
        fresh = len(self.nodes.registry.fresh())
        self.metrics.nodes.labels("fresh").set(fresh)
        self.metrics.nodes.labels("stale").set(len(self.nodes.registry.nodes()) - fresh)
        states = {"requested": 0, "publishing": 0, "failed": 0, "stopped": 0}
        for publication in self.publications.all():
            states[publication.state] = states.get(publication.state, 0) + 1
        for name, count in states.items():
            self.metrics.publications.labels(name).set(count)

    def publication(self, camera_id: int) -> Publication | None:
        return self.publications.get(camera_id)
