"""Live-view benchmark: one camera relayed to many viewers by the forwarding core, against decode + encode per viewer.

    .venv/bin/python -m benchmarks.live_view [--quick]      (or LIVE_VIEW_QUICK=1)

In one run, on loopback, every part in its own process (`benchmarks/live_view_roles.py`):
1. Viewers per core. A publisher sends the simulator's 720p25 H.264 loop (2 Mbit/s, 2 s GOP) as pre-encoded
   packets to the relay process (the forwarding core with its GOP cache, aiortc's own send path). Batches of
   aiortc viewers (ICE, DTLS, SRTP; they decrypt and count packets, they do not decode) join until two steps in a
   row are not at full rate (a viewer under 24 fps, a lag over 200 ms, or a packet lost). Per step: the relay
   process's CPU time (user + system) over the window; viewers per core = viewers / relay cores used, at the
   largest full-rate step; the viewers' own processes are measured apart and reported.
2. The same for the naive path (the camera decoded once, encoded by aiortc's H.264 encoder for every viewer), as
   the reference.
3. Time to first frame, direct: a viewer that decodes, from its createOffer (the offer POSTed straight to the
   relay process, not through the controller) to its first decoded frame; median of 20 (5 with --quick), with the
   GOP cache and without it (then it waits for the next keyframe). Samples start at random points of the GOP.
4. Join storm: 100 viewers (30 with --quick) join within 1 s while 20 watch; time until all play (a first frame
   counted), and the lowest frame rate over two seconds among those already watching during the storm.
5. Time to first frame through the controller (`benchmarks/live_view_controller.py`), the issue's figure: `python
   -m demo` (controller, media node, agent, simulated cameras with a 2 s keyframe interval, each its own process),
   the demo parent's `POST /api/live/watch` sent -> WHEP offer/answer at the node -> the first frame an aiortc
   viewer decodes; 20 samples (5 with --quick) warm (the camera already watched by another device) and 20 cold
   (the other class camera after the idle close: the agent is asked to publish). Median and p90.
Prints the conditions and figures, then a JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import live_view_controller as controller_path
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FPS = 25
FULL_FPS = 24.0
MAX_LAG_MS = 200.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def _terminate(process: asyncio.subprocess.Process, grace_s: float = 10) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _spawn(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        PYTHON, "-m", "benchmarks.live_view_roles", *argv, cwd=REPO, stdout=asyncio.subprocess.PIPE
    )


async def _line(process: asyncio.subprocess.Process, timeout: float = 120) -> dict[str, Any]:  # noqa: ASYNC109
    assert process.stdout is not None
    raw = await asyncio.wait_for(process.stdout.readline(), timeout)
    if not raw:
        raise RuntimeError("a benchmark process exited early")
    data: dict[str, Any] = json.loads(raw)
    return data


@dataclass
class Viewers:
    """One process of counting viewers; its per-second lines are collected as they come."""

    process: asyncio.subprocess.Process
    count: int
    lines: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        with contextlib.suppress(RuntimeError):
            while True:
                self.lines.append(await _line(self.process, 3600))

    def window(self, since: float, until: float) -> list[dict[str, Any]]:
        """The per-second lines (`t`: when written, `v`: one entry per viewer) written within [since, until]."""
        return [line for line in self.lines if "v" in line and since <= line["t"] <= until]


def rates(lines: list[dict[str, Any]], count: int) -> list[float]:
    """Each viewer's frame rate over the lines: frames after the first line / time between first and last."""
    if len(lines) < 2:
        return [0.0] * count
    span = lines[-1]["t"] - lines[0]["t"]
    return [sum(line["v"][i][0] for line in lines[1:]) / span for i in range(count)]


@contextlib.asynccontextmanager
async def relay_and_camera(mode: str, path: str = "direct") -> AsyncIterator[tuple[str, int]]:
    """The relay process (`mode` forward or naive, send `path` direct or stock) with the publisher sending to it;
    yields its URL and pid."""
    port = free_port()
    relay = await _spawn("relay", "--port", str(port), "--mode", mode, "--path", path)
    publisher: asyncio.subprocess.Process | None = None
    try:
        await _line(relay)
        url = f"http://127.0.0.1:{port}"
        publisher = await _spawn("publisher", "--url", url)
        await _line(publisher)
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while True:
                async with session.get(f"{url}/stats") as response:
                    stats = await response.json()
                if stats["ready"] and (mode == "naive" or stats["frames_in"] > FPS * 2):
                    break  # past the first GOP: the cache holds a keyframe
                if time.monotonic() > deadline:
                    raise RuntimeError("the relay never received the camera")
                await asyncio.sleep(0.2)
        yield url, relay.pid
    finally:
        if publisher is not None:
            await _terminate(publisher)
        await _terminate(relay)


async def add_viewers(url: str, count: int, spread_s: float = 0.0) -> Viewers:
    process = await _spawn("viewers", "--url", url, "--count", str(count), "--spread", str(spread_s))
    viewers = Viewers(process, count)
    await _line(process, 120)  # joined
    viewers.reader = asyncio.ensure_future(viewers.read())
    return viewers


async def close_viewers(groups: list[Viewers]) -> None:
    for group in groups:
        await _terminate(group.process)
        if group.reader is not None:
            await group.reader


@dataclass
class Step:
    viewers: int
    relay_cores: float
    viewer_cores: float
    min_fps: float
    median_fps: float
    max_lag_ms: float
    lost: int
    camera_fps: float
    """Frames per second reaching the relay from the camera (below 25: the publisher or the relay was starved)."""

    @property
    def delivered_per_core(self) -> float:
        """Viewers served at 25 fps per relay core, counting the frames actually delivered (a starved step counts
        as fewer viewers): robust to other processes taking the CPU, unlike the full-rate criterion."""
        return self.viewers * min(1.0, self.median_fps / FPS) / self.relay_cores if self.relay_cores > 0 else 0.0

    @property
    def full_rate(self) -> bool:
        return self.min_fps >= FULL_FPS and self.max_lag_ms <= MAX_LAG_MS and self.lost == 0

    def describe(self) -> str:
        state = "full rate" if self.full_rate else "DEGRADED"
        per_core = self.viewers / self.relay_cores if self.relay_cores > 0 else float("inf")
        camera = f"{self.camera_fps:.1f} fps" if self.camera_fps > 0 else "n/a"
        return (
            f"  {self.viewers:4d} viewers: relay {self.relay_cores:.2f} cores ({per_core:.0f} viewers/core, "
            f"{100 * self.relay_cores / self.viewers:.2f}% of a core each), viewers' processes "
            f"{self.viewer_cores:.2f} cores; camera in {camera}; viewers' fps min {self.min_fps:.1f} "
            f"median {self.median_fps:.1f}; "
            f"lag max {self.max_lag_ms:.0f} ms; lost {self.lost}: {state} ({self.delivered_per_core:.0f} per core "
            "by frames delivered)"
        )


async def frames_in(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/stats") as response:
        count: int = (await response.json())["frames_in"]
        return count


async def measure(url: str, relay_pid: int, groups: list[Viewers], window_s: float) -> Step:
    """Relay CPU, the camera's frame rate into the relay and the viewers' frame rates over `window_s` seconds."""
    in0 = await frames_in(url)
    cpu0 = cpu_seconds(relay_pid)
    vcpu0 = sum(cpu_seconds(g.process.pid) for g in groups)
    t0 = time.monotonic()
    await asyncio.sleep(window_s)
    t1 = time.monotonic()
    relay_cores = (cpu_seconds(relay_pid) - cpu0) / (t1 - t0)
    viewer_cores = (sum(cpu_seconds(g.process.pid) for g in groups) - vcpu0) / (t1 - t0)
    camera_fps = (await frames_in(url) - in0) / (time.monotonic() - t0)
    await asyncio.sleep(1.1)  # the last second's lines
    fps: list[float] = []
    lags: list[float] = []
    lost = 0
    for group in groups:
        lines = group.window(t0, t1 + 0.5)
        fps.extend(rates(lines, group.count))
        for line in lines[1:]:
            lags.extend(v[1] for v in line["v"])
            lost += sum(int(v[2]) for v in line["v"])
    n = sum(g.count for g in groups)
    return Step(
        n, relay_cores, viewer_cores, min(fps), statistics.median(fps), max(lags, default=0.0), lost, camera_fps
    )


async def ramp(mode: str, steps: Sequence[int], window_s: float, path: str = "direct") -> list[Step]:
    """Viewers join in batches up to each step's total, until two steps in a row are not at full rate."""
    results: list[Step] = []
    async with relay_and_camera(mode, path) as (url, pid):
        groups: list[Viewers] = []
        try:
            total = 0
            for target in steps:
                batch = target - total
                while batch > 0:
                    size = min(batch, 100)
                    groups.append(await add_viewers(url, size))
                    batch -= size
                total = target
                await asyncio.sleep(2.0)  # past the joins and the GOP bursts
                step = await measure(url, pid, groups, window_s)
                print(step.describe(), flush=True)
                results.append(step)
                if len(results) >= 2 and not (results[-1].full_rate or results[-2].full_rate):
                    break  # two steps in a row below full rate (one alone may be another process's hiccup)
        finally:
            await close_viewers(groups)
    return results


async def ttff(url: str, count: int, cache: bool) -> list[float]:
    """`count` decoding viewers one after the other, each from a random point of the GOP (see the roles)."""
    process = await _spawn("ttff", "--url", url, "--count", str(count), "--cache", "1" if cache else "0")
    try:
        result = await _line(process, 120)
    finally:
        await _terminate(process)
    samples: list[float] = result["ttff_ms"]
    return samples


async def storm(url: str, relay_pid: int, existing: int, joiners: int) -> tuple[float, float, float]:
    """`joiners` viewers within 1 s while `existing` watch: (seconds until all play, existing viewers' lowest
    one-second fps during the storm, relay cores during it)."""
    watching = await add_viewers(url, existing)
    groups = [watching]
    try:
        await asyncio.sleep(2.0)
        cpu0 = cpu_seconds(relay_pid)
        t0 = time.monotonic()
        process = await _spawn("viewers", "--url", url, "--count", str(joiners), "--spread", "1.0")
        storming = Viewers(process, joiners)
        groups.append(storming)
        joined = await _line(process, 120)
        storming.reader = asyncio.ensure_future(storming.read())
        # Each line has every joiner's first-frame time (or -1): wait until none is missing.
        deadline = time.monotonic() + 30
        all_playing: float | None = None
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            rows = [line["v"] for line in storming.lines if "v" in line]
            if rows and all(v[3] >= 0 for v in rows[-1]):
                all_playing = max(v[3] for v in rows[-1]) - float(joined["first_start"])
                break
        t1 = time.monotonic()
        cores = (cpu_seconds(relay_pid) - cpu0) / (t1 - t0)
        await asyncio.sleep(1.1)
        lines = watching.window(t0, t1 + 1.0)
        # Lowest rate of any watcher over any two consecutive seconds of the storm.
        pairs = [lines[i : i + 3] for i in range(max(0, len(lines) - 2))]
        existing_min = min((min(rates(pair, existing)) for pair in pairs), default=0.0)
        return (all_playing if all_playing is not None else float("inf")), float(existing_min), cores
    finally:
        await close_viewers(groups)


async def run(quick: bool) -> dict[str, Any]:
    window = 3.0
    steps = [20, 60] if quick else [50, 100, 150, 200]
    samples = 5 if quick else 20
    joiners = 30 if quick else 100
    print("conditions: one 720p25 H.264 camera at ~2 Mbit/s, 2 s GOP, loopback, every part in its own process;")
    print(f"  viewers are aiortc peers that decrypt and count packets (no decoding); full rate = >= {FULL_FPS} fps,")
    print(f"  lag <= {MAX_LAG_MS:.0f} ms, no loss over a {window:.0f} s window; per core = viewers / relay CPU;")
    print("  SRTP AES128_CM_SHA1_80 to viewers (what headless Chromium negotiates with the node);")
    print(f"  {os.cpu_count()} cores shared with other work (load average {os.getloadavg()[0]:.1f} at the start);")
    print(f"  Python {platform.python_version()}")
    print("forwarding core, fast send path (payloads made once per frame, header + SRTP + sendto per viewer):")
    forward = await ramp("forward", steps, window, "direct")
    print("forwarding core, aiortc's own send path (an RTCRtpSender packetizes for each viewer):", flush=True)
    stock = await ramp("forward", steps[:2], window, "stock")
    print("naive path (decode once, aiortc H.264 encode per viewer):", flush=True)
    naive = await ramp("naive", [1, 2] if quick else [1, 2, 4], window)
    async with relay_and_camera("forward") as (url, pid):
        print("time to first frame, direct (from the viewer's createOffer, offer POSTed to the relay process):")
        with_cache = await ttff(url, samples, cache=True)
        print(f"  GOP cache: median {statistics.median(with_cache):.0f} ms, {sorted(with_cache)}", flush=True)
        without = await ttff(url, samples, cache=False)
        print(f"  no cache:  median {statistics.median(without):.0f} ms, {sorted(without)}", flush=True)
        print(f"join storm: {joiners} viewers within 1 s while 20 watch:")
        storm_s, existing_fps, storm_cores = await storm(url, pid, 20, joiners)
        print(f"  all playing after {storm_s:.2f} s; watchers' lowest 2 s frame rate {existing_fps:.1f} fps; ")
        print(f"  relay {storm_cores:.2f} cores during the storm", flush=True)

    def best(steps_: list[Step]) -> Step | None:
        full = [s for s in steps_ if s.full_rate]
        return full[-1] if full else None

    def per_core(steps_: list[Step]) -> float:
        """At the largest full-rate step; when no step was at full rate (the machine was busy with other work),
        by frames delivered, and the output says so."""
        chosen = best(steps_)
        if chosen is not None and chosen.relay_cores > 0:
            return chosen.viewers / chosen.relay_cores
        return max((s.delivered_per_core for s in steps_), default=0.0)

    fwd, st = best(forward), best(stock)
    fwd_per_core, stock_per_core, naive_per_core = per_core(forward), per_core(stock), per_core(naive)
    ratio = fwd_per_core / naive_per_core if naive_per_core else None
    for label, steps_ in (("fast path", forward), ("aiortc's send path", stock), ("naive path", naive)):
        if best(steps_) is None:
            print(f"note: no {label} step was at full rate; its figure is by frames delivered")
    print(
        f"result: {fwd_per_core:.0f} viewers per core forwarded (at {fwd.viewers if fwd else 0} viewers) against "
        f"{naive_per_core:.1f} naive ({ratio or 0:.0f}x); aiortc's own send path {stock_per_core:.0f}; goal 400"
    )
    print("time to first frame through the controller (benchmarks/live_view_controller.py):", flush=True)
    print("  path: the parent's POST /api/live/watch sent -> controller answer (node, WHEP URL, view token) -> WHEP")
    print("  offer/answer at the media node -> first frame decoded by an aiortc viewer (PyAV); `python -m demo`'s")
    print("  controller, media node, agent and simulated cameras (2 s keyframe interval, sub-stream published),")
    print("  each its own process, 127.0.0.1 only; samples start at random points of the GOP;")
    print("  warm = the camera already watched by another device of the parent (relay up, GOP cache full);")
    print("  cold = the other class camera with no relay and no publication (the controller's and the node's")
    print(f"  idle close set to {controller_path.IDLE_CLOSE_S} s, waited for between samples): the agent is asked")
    print("  to publish; the simulator gives a new RTSP (TCP) client the current GOP at once and the agent sends")
    print("  it first (a camera that starts a new client at its next keyframe would add about 1 s to cold starts);")
    print(f"  (load average {os.getloadavg()[0]:.1f} at the start)", flush=True)
    via = await controller_path.measure(samples, samples)
    warm, cold = via["warm_ms"], via["cold_ms"]
    warm_p50, warm_p90 = statistics.median(warm), controller_path.percentile(warm, 0.9)
    cold_p50, cold_p90 = statistics.median(cold), controller_path.percentile(cold, 0.9)
    print(f"  demo up in {via['demo_up_s']:.0f} s")
    print(f"  warm: median {warm_p50:.0f} ms, p90 {warm_p90:.0f} ms, {sorted(warm)}")
    print(f"  cold: median {cold_p50:.0f} ms, p90 {cold_p90:.0f} ms, {sorted(cold)}; goal: median under 150 ms")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return {
        "viewers_per_core": round(fwd_per_core, 1),
        "viewers_per_core_by_frames": round(max((s.delivered_per_core for s in forward), default=0.0), 1),
        "stock_send_viewers_per_core_by_frames": round(max((s.delivered_per_core for s in stock), default=0.0), 1),
        "naive_viewers_per_core": round(naive_per_core, 2),
        "ratio_vs_naive": round(ratio, 1) if ratio is not None else None,
        "max_full_rate_viewers": fwd.viewers if fwd else 0,
        "cpu_pct_per_viewer": round(100 * fwd.relay_cores / fwd.viewers, 3) if fwd else None,
        "ttff_ms_p50": round(warm_p50, 1),
        "ttff_ms_p90": round(warm_p90, 1),
        "ttff_cold_ms_p50": round(cold_p50, 1),
        "ttff_cold_ms_p90": round(cold_p90, 1),
        "ttff_direct_ms_p50": round(statistics.median(with_cache), 1),
        "ttff_ms_p50_without_cache": round(statistics.median(without), 1),
        "storm_all_playing_s": round(storm_s, 2),
        "storm_existing_min_fps": round(existing_fps, 1),
        "storm_viewers": joiners,
        "stock_send_viewers_per_core": round(stock_per_core, 1),
        "stock_send_max_full_rate_viewers": st.viewers if st else 0,
        "send_path": "direct (media.direct: shared payloads, per-viewer header + SRTP + sendto)",
        "ttff_from": "POST /api/live/watch to the first decoded frame (controller, node, agent: python -m demo); "
        "ttff_direct_*: the viewer's offer to the relay process",
        "ttff_keyframe_interval_s": controller_path.GOP_S,
        "ttff_samples": len(warm),
        "load_average_end": round(os.getloadavg()[0], 2),
        "quick": quick,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and samples (about a minute)")
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("LIVE_VIEW_QUICK") == "1"
    result = asyncio.run(run(quick))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
