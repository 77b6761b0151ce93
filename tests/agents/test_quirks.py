"""Every quirk switch of the simulated camera, and the state and reason the agent reports for it.

One pass over a mix of good and broken cameras: the broken ones cost bounded time, the good ones end ready.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agents.discovery.credentials import CredentialBook
from agents.discovery.scanner import Scanner
from protocol.camera import CameraReport, CameraState
from tests.agents.cameras import config, running, spec

DEADLINE_S = 1.5
WAIT_S = 0.4

CAMERAS = [
    spec("good-1", "127.0.1.160"),
    spec("good-2", "127.0.1.161"),
    spec("skewed", "127.0.1.162", clock_offset_s=1.0e7),
    spec("skewed-back", "127.0.1.163", clock_offset_s=-1.6e7),
    spec("open", "127.0.1.164", password="", no_auth=True),
    spec("no-getservices", "127.0.1.165", broken_get_services=True),
    spec("wrong-password", "127.0.1.166", password="another-one"),
    spec("slow", "127.0.1.167", slow_reply_s=30.0),
    spec("trickle", "127.0.1.168", trickle_bytes_per_s=40),
    spec("entities", "127.0.1.169", hostile_soap="entities"),
    spec("dtd", "127.0.1.170", hostile_soap="dtd"),
    spec("external", "127.0.1.171", hostile_soap="external"),
    spec("huge", "127.0.1.172", hostile_soap="huge"),
    spec("refusing", "127.0.1.173", refuse_connections=True),
]


async def _scan_all(state_dir: Path) -> dict[str, tuple[CameraReport, float]]:
    cfg = config(state_dir, ["127.0.1.160-127.0.1.175"], deadline_s=DEADLINE_S, wait_s=WAIT_S)
    scanner = Scanner(cfg, CredentialBook.from_config(cfg))
    try:
        async with running(CAMERAS):
            started = time.monotonic()
            result = await scanner.scan()
            elapsed = time.monotonic() - started
    finally:
        await scanner.close()
    return {r.name: (r, elapsed) for r in result.reports}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[CameraReport, float]]:
    """One pass over every camera, shared by the tests below (each reads the report of its camera)."""
    return asyncio.run(_scan_all(tmp_path_factory.mktemp("quirks")))


def test_every_camera_is_found_and_the_pass_is_bounded(reports: dict[str, tuple[CameraReport, float]]) -> None:
    assert sorted(reports) == sorted(c.name for c in CAMERAS)
    elapsed = next(iter(reports.values()))[1]
    # Probe wait plus one device deadline (all in parallel) plus slack; the slow camera would take 30 s.
    assert elapsed < WAIT_S + DEADLINE_S + 1.5


@pytest.mark.parametrize("name", ["good-1", "good-2"])
def test_good_cameras_are_ready_with_main_and_sub(reports: dict[str, tuple[CameraReport, float]], name: str) -> None:
    report = reports[name][0]
    assert report.state is CameraState.READY, report.reason
    roles = {p.role: p for p in report.profiles}
    assert (roles["main"].width, roles["main"].height) == (1280, 720)
    assert (roles["sub"].width, roles["sub"].height) == (640, 360)
    assert roles["main"].stream_uri is not None and roles["main"].stream_uri.startswith(f"rtsp://{report.address}:")
    assert report.snapshot_uri is not None and report.snapshot_uri.startswith(f"http://{report.address}:")
    assert report.device is not None and report.device.model == "SIM-720"
    assert report.clock_offset_s is not None and abs(report.clock_offset_s) < 5


@pytest.mark.parametrize(("name", "offset"), [("skewed", 1.0e7), ("skewed-back", -1.6e7)])
def test_clock_months_off_still_authenticates(
    reports: dict[str, tuple[CameraReport, float]], name: str, offset: float
) -> None:
    report = reports[name][0]
    assert report.state is CameraState.READY, report.reason
    assert report.clock_offset_s is not None and abs(report.clock_offset_s - offset) < 5
    assert "clock off by" in report.reason


def test_camera_without_auth_is_ready(reports: dict[str, tuple[CameraReport, float]]) -> None:
    assert reports["open"][0].state is CameraState.READY, reports["open"][0].reason


def test_broken_get_services_falls_back_to_get_capabilities(
    reports: dict[str, tuple[CameraReport, float]],
) -> None:
    report = reports["no-getservices"][0]
    assert report.state is CameraState.READY, report.reason
    assert {p.role for p in report.profiles} >= {"main", "sub"}


def test_wrong_password_is_auth_failed(reports: dict[str, tuple[CameraReport, float]]) -> None:
    report = reports["wrong-password"][0]
    assert report.state is CameraState.AUTH_FAILED
    assert "credentials refused" in report.reason and report.profiles == []


@pytest.mark.parametrize("name", ["slow", "trickle"])
def test_slow_and_trickled_replies_time_out(reports: dict[str, tuple[CameraReport, float]], name: str) -> None:
    report = reports[name][0]
    assert report.state is CameraState.UNREACHABLE
    assert report.reason.startswith(f"timed out after {DEADLINE_S:g} s"), report.reason


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("entities", "entity declarations"),
        ("dtd", "DTD"),
        ("external", "external entity reference"),
        ("huge", "larger than"),
    ],
)
def test_hostile_replies_are_refused(reports: dict[str, tuple[CameraReport, float]], name: str, words: str) -> None:
    report = reports[name][0]
    assert report.state is CameraState.UNREACHABLE
    assert report.reason.startswith("hostile reply refused") and words in report.reason, report.reason


def test_refused_connections_are_unreachable(reports: dict[str, tuple[CameraReport, float]]) -> None:
    report = reports["refusing"][0]
    assert report.state is CameraState.UNREACHABLE
    assert "closed the connection" in report.reason or "refused" in report.reason, report.reason


def _reset_peak_rss() -> None:
    """Make VmHWM (the peak RSS) start again from the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/self/status")


async def test_huge_reply_costs_little_memory(tmp_path: Path) -> None:
    cfg = config(tmp_path, [], deadline_s=10.0)
    scanner = Scanner(cfg, CredentialBook.from_config(cfg))
    cameras = [spec("huge-alone", "127.0.1.174", hostile_soap="huge"), spec("warm-up", "127.0.1.177")]
    try:
        async with running(cameras):
            # Warm up on a good camera (WSDLs parsed, session made), not on the huge one: memory freed after a
            # huge read stays resident and would hide the growth of a second one.
            await scanner.scan(extra_targets=["127.0.1.177"])
            _reset_peak_rss()
            before = _rss_kib("VmRSS")
            started = time.monotonic()
            result = await scanner.scan(extra_targets=["127.0.1.174"])
            elapsed = time.monotonic() - started
            peak = _rss_kib("VmHWM")
    finally:
        await scanner.close()
    (report,) = result.reports
    assert report.state is CameraState.UNREACHABLE and "larger than" in report.reason
    # The reply is 50 MiB; reading it all would raise the peak by at least that.
    assert peak - before < 8 * 1024, f"peak RSS grew by {(peak - before) / 1024:.1f} MiB"
    assert elapsed < 3.0


async def test_a_failing_device_never_stops_the_scan(tmp_path: Path) -> None:
    """Even an error the interrogation does not expect becomes a reason, and the others are still asked."""
    cfg = config(tmp_path, ["127.0.1.175-127.0.1.176"])
    scanner = Scanner(cfg, CredentialBook.from_config(cfg))

    async def explode(*args: object) -> None:
        raise RuntimeError("a bug")

    try:
        async with running([spec("a", "127.0.1.175"), spec("b", "127.0.1.176")]):
            real = scanner._interrogator.interrogate
            calls = 0

            async def sometimes(*args: object) -> None:
                nonlocal calls
                calls += 1
                if calls == 1:
                    await explode()
                await real(*args)  # type: ignore[arg-type]

            scanner._interrogator.interrogate = sometimes  # type: ignore[method-assign,assignment]
            result = await asyncio.wait_for(scanner.scan(), 10)
    finally:
        await scanner.close()
    states = sorted((r.state.value, r.reason) for r in result.reports)
    assert states[0][0] == "ready" and states[1] == (
        "unreachable",
        "unexpected error at GetSystemDateAndTime: RuntimeError",
    )
