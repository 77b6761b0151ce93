"""One discovery pass: probe, decide which devices may be asked, interrogate them in parallel within bounds.

Devices outside the site's camera networks (by the address they answered from, or by every XAddr they name)
are never sent the site's credentials: they are reported pending_approval until a technician approves their
endpoint reference. Each interrogation runs under the per-device deadline and a semaphore; no exception from
one device reaches the others or the caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlsplit

from agents.config import AgentConfig
from agents.discovery.credentials import CredentialBook
from agents.discovery.errors import DeviceError
from agents.discovery.interrogate import Findings, Interrogator
from agents.discovery.onvif_client import load_documents
from agents.discovery.wsdiscovery import ProbeMatch, ProbeStats, probe
from agents.networks import CameraNetworks, expand_targets
from common.clock import Clock, SystemClock
from common.redact import strip_credentials
from protocol.camera import CameraReport, CameraState

logger = logging.getLogger(__name__)

FOUND_REASON = "answered a probe; not yet asked over ONVIF"
_NAME_SCOPE = "onvif://www.onvif.org/name/"


@dataclass(frozen=True)
class ScanResult:
    reports: list[CameraReport]
    probe_stats: ProbeStats
    probe_seconds: float
    seconds: float
    finished_s: dict[str, float]
    """Seconds from the start of the pass to each device's report."""


def scope_name(scopes: Sequence[str]) -> str:
    for scope in scopes:
        if scope.startswith(_NAME_SCOPE):
            return unquote(scope[len(_NAME_SCOPE) :])[:256]
    return ""


def _http_xaddrs(match: ProbeMatch) -> list[str]:
    out = []
    for xaddr in match.xaddrs:
        try:
            parts = urlsplit(xaddr)
        except ValueError:
            continue
        if parts.scheme in ("http", "https") and parts.hostname and len(xaddr) <= 2048:
            out.append(strip_credentials(xaddr))
    return out[:16]


def choose_xaddr(match: ProbeMatch, networks: CameraNetworks | None) -> str | None:
    """The device service address to use: inside the networks (when given), preferring the replying address."""
    usable = [x for x in _http_xaddrs(match) if networks is None or networks.url_inside(x)]
    same_host = [x for x in usable if urlsplit(x).hostname == match.address]
    candidates = same_host or usable
    return candidates[0] if candidates else None


class Scanner:
    """Runs discovery passes with one configuration; `close()` releases the HTTP session."""

    def __init__(self, config: AgentConfig, credentials: CredentialBook, clock: Clock | None = None) -> None:
        self._config = config
        self._credentials = credentials
        self._clock: Clock = clock or SystemClock()
        self._networks = CameraNetworks(config.site.camera_networks)
        timeouts = config.timeouts
        self._deadline_s = timeouts.device_deadline_s
        self._semaphore = asyncio.Semaphore(timeouts.max_concurrent_devices)
        self._interrogator = Interrogator(max_response_bytes=timeouts.max_response_bytes, deadline_s=self._deadline_s)

    async def close(self) -> None:
        await self._interrogator.close()

    async def scan(
        self,
        *,
        approved: Collection[str] = (),
        extra_targets: Sequence[str] = (),
        wait_s: float | None = None,
        multicast: bool | None = None,
        on_found: Callable[[CameraReport], Awaitable[None]] | None = None,
        on_report: Callable[[CameraReport], Awaitable[None]] | None = None,
    ) -> ScanResult:
        """Probe, then interrogate every device found; one report per endpoint reference.

        `on_found` is awaited with a `found` report as each device answers, `on_report` with its final report as
        soon as its interrogation ends (so that a slow device does not hold back the others' news); errors in
        either are logged, never raised.
        """
        site = self._config.site
        targets = expand_targets([*site.unicast_targets, *extra_targets])
        await load_documents()  # parse the WSDLs once, before the devices are asked in parallel
        started = time.monotonic()
        tasks: dict[str, asyncio.Task[CameraReport]] = {}
        finished: dict[str, float] = {}

        async def examine(match: ProbeMatch) -> CameraReport:
            if on_found is not None:
                await _notify(on_found, self._report(match, self._clock.now(), CameraState.FOUND, FOUND_REASON))
            report = await self.examine(match, approved=match.endpoint_ref in approved)
            finished[match.endpoint_ref] = time.monotonic() - started
            if on_report is not None:
                await _notify(on_report, report)
            return report

        async with asyncio.TaskGroup() as group:

            def start(match: ProbeMatch) -> None:
                # Interrogation starts as soon as a device answers, while the probe still listens for others.
                tasks[match.endpoint_ref] = group.create_task(examine(match), name=f"examine {match.endpoint_ref}")

            result = await probe(
                wait_s=wait_s if wait_s is not None else self._config.timeouts.probe_wait_s,
                bind_address=site.probe_address,
                unicast=targets,
                multicast=site.multicast if multicast is None else multicast,
                ttl=site.multicast_ttl,
                rate_per_s=site.unicast_rate_per_s,
                on_match=start,
            )
            probe_seconds = time.monotonic() - started
        reports = [task.result() for task in tasks.values()]
        return ScanResult(reports, result.stats, probe_seconds, time.monotonic() - started, finished)

    async def examine(self, match: ProbeMatch, *, approved: bool = False) -> CameraReport:
        """The report for one probed device; never raises (except cancellation)."""
        now = self._clock.now()
        networks = None if approved else self._networks
        if networks is not None and not networks.contains(match.address):
            return self._report(
                match, now, CameraState.PENDING_APPROVAL, f"address {match.address} is outside the camera networks"
            )
        xaddr = choose_xaddr(match, networks)
        if xaddr is None:
            if networks is not None and _http_xaddrs(match):
                return self._report(
                    match, now, CameraState.PENDING_APPROVAL, "its XAddrs are outside the camera networks"
                )
            return self._report(match, now, CameraState.UNREACHABLE, "the probe reply names no HTTP device service")
        login = self._credentials.for_device(match.endpoint_ref, match.address)
        findings = Findings()
        started = time.monotonic()
        try:
            async with self._semaphore:
                started = time.monotonic()
                async with asyncio.timeout(self._deadline_s):
                    await self._interrogator.interrogate(xaddr, login, findings, networks)
        except DeviceError as exc:
            state, reason = exc.state, exc.reason
        except TimeoutError:
            state, reason = CameraState.UNREACHABLE, f"timed out after {self._deadline_s:g} s at {findings.step}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a library surprise on one device must not stop the others
            logger.warning("camera %s: interrogation failed unexpectedly", match.endpoint_ref, exc_info=True)
            state, reason = CameraState.UNREACHABLE, f"unexpected error at {findings.step}: {type(exc).__name__}"
        else:
            state, reason = CameraState.READY, _ready_reason(findings, approved)
        logger.debug(
            "camera %s at %s: %s (%s) in %.3f s",
            match.endpoint_ref,
            match.address,
            state,
            reason,
            time.monotonic() - started,
        )
        return self._report(match, self._clock.now(), state, reason, findings)

    def _report(
        self, match: ProbeMatch, now: datetime, state: CameraState, reason: str, findings: Findings | None = None
    ) -> CameraReport:
        findings = findings or Findings()
        return CameraReport(
            endpoint_ref=match.endpoint_ref,
            address=match.address,
            xaddrs=_http_xaddrs(match),
            scopes=[s[:256] for s in match.scopes[:64]],
            name=scope_name(match.scopes),
            state=state,
            reason=reason[:256],
            device=findings.device,
            clock_offset_s=findings.clock_offset_s,
            profiles=findings.profiles if state is CameraState.READY else [],
            snapshot_uri=findings.snapshot_uri if state is CameraState.READY else None,
            first_seen=now,
            last_seen=now,
            changed_at=now,
        )


async def _notify(callback: Callable[[CameraReport], Awaitable[None]], report: CameraReport) -> None:
    try:
        await callback(report)
    except Exception:
        logger.exception("camera %s: a discovery listener failed", report.endpoint_ref)


def _ready_reason(findings: Findings, approved: bool) -> str:
    parts = [f"{p.role} {p.width}x{p.height} {p.encoding}" for p in findings.profiles if p.role != "other"]
    reason = "profiles read: " + (", ".join(parts) or "no H.264/H.265 profile")
    if findings.clock_offset_s is not None and abs(findings.clock_offset_s) > 60:
        reason += f"; camera clock off by {findings.clock_offset_s:.0f} s"
    if approved:
        reason += "; approved by a technician"
    return reason
