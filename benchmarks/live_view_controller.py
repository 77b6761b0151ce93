"""Time to first frame through the controller, for `benchmarks/live_view.py`.

    .venv/bin/python -m benchmarks.live_view_controller [--samples N] [--cold-samples N]   (alone)

The real parts as separate processes on loopback: `python -m demo` (controller, one media node, the simulator's
cameras, one enrolled agent; its parent `phuhuynh` with a child in class Lá 1, two class cameras, a window open
now), started here with a fresh work directory, free ports and a loopback /24 of its own, and a viewer process
(`python -m benchmarks.live_view_controller viewer`: aiortc, ICE servers none, 127.0.0.1 candidates only). The
simulator's cameras have a 2 s keyframe interval (`simulator.video`, MAIN and SUB `gop_s=2.0`).

One sample: the clock starts when the parent's `POST /api/live/watch` is sent; then the controller's answer (node
URL, WHEP URL, view token), the viewer's offer POSTed to the node's WHEP URL, the answer applied, and the clock
stops at the first frame aiortc decodes (PyAV's H.264 decoder). Each sample starts at a random point of the GOP,
then the view is ended (`POST /api/live/end`, WHEP DELETE).

- warm: the camera is already watched by another viewer of the same parent (another device), so the relay is
  up with its GOP cache: the usual case for a class.
- cold: the other class camera, no relay and no publication: the controller asks the agent over its uplink to
  publish (WHIP to the node) and the viewer waits for it. Between cold samples the view ends and the benchmark
  waits for the idle close: the controller's `live_idle_close_s` and the node's `relay_idle_close_s` are set to
  0.5 s for this run (environment), and the next sample starts once the controller has forgotten the publication
  and the node has no relay and no publisher left.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from rtc import aiortc_adapter as adapter
from rtc.aiortc_adapter import LoopbackCandidates, VideoCodec
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
IDLE_CLOSE_S = 0.5
GOP_S = 2.0
DEMO_ENV = {
    "KETNOI_CONTROLLER_LIVE_IDLE_CLOSE_S": str(IDLE_CLOSE_S),
    "KETNOI_MEDIA_RELAY_IDLE_CLOSE_S": str(IDLE_CLOSE_S),
    "KETNOI_CONTROLLER_LIVE_MAX_DEVICES": "4",
}
PASSWORD_ENV = "KETNOI_BENCH_PARENT_PASSWORD"


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between the closest ranks."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ---------------------------------------------------------------------------------------------------------------
# the demo, started and stopped here


@dataclass(frozen=True)
class Demo:
    url: str
    username: str
    password: str


async def _stop(process: asyncio.subprocess.Process, grace_s: float) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)  # the demo stops its children (controller, node, agent, cameras)
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def running_demo(timeout_s: float = 150) -> AsyncIterator[Demo]:
    """`python -m demo` with 5 cameras (three ready: two for the class, one staff-only), until it is up."""
    workdir = Path(tempfile.mkdtemp(prefix="ketnoi-bench-demo-"))
    port = free_port()
    net = f"127.{random.randint(64, 250)}.{random.randint(0, 255)}"
    argv = [
        "-m", "demo", "--workdir", str(workdir / "demo"), "--port", str(port), "--agent-port", str(free_port()),
        "--first-host", f"{net}.1", "--http-port", str(free_port()), "--rtsp-port", str(free_port()),
        "--cameras", "5", "--media-port", str(free_port()), "--timeout", str(int(timeout_s)),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        PYTHON,
        *argv,
        cwd=REPO,
        env={**os.environ, **DEMO_ENV},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,  # stderr inherited: the demo says there why it could not start
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(timeout_s + 30):
            while not any("Ctrl-C" in line for line in lines):
                line = (await process.stdout.readline()).decode("utf-8", "replace")
                if not line:
                    raise RuntimeError(f"the demo stopped before it was up (logs: {workdir / 'demo' / 'logs'})")
                lines.append(line)
        output = "".join(lines)
        match = re.search(r"^\s+phuhuynh \(.*?\)\s+(\S+) / (\S+)$", output, re.MULTILINE)
        if match is None:
            raise RuntimeError("no parent login in the demo's output")
        yield Demo(f"http://127.0.0.1:{port}", match.group(1), match.group(2))
    finally:
        await _stop(process, 40)
        await asyncio.to_thread(shutil.rmtree, workdir, True)


async def measure(samples: int, cold_samples: int) -> dict[str, Any]:
    """Start the demo and the viewer process; the viewer's result line (`warm_ms`, `cold_ms`, ...)."""
    started = time.monotonic()
    async with running_demo() as demo:
        up_s = time.monotonic() - started
        viewer = await asyncio.create_subprocess_exec(
            PYTHON, "-m", "benchmarks.live_view_controller", "viewer", "--url", demo.url,
            "--username", demo.username, "--samples", str(samples), "--cold-samples", str(cold_samples),
            cwd=REPO, env={**os.environ, PASSWORD_ENV: demo.password}, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert viewer.stdout is not None
        try:
            raw = await asyncio.wait_for(viewer.stdout.readline(), 60 + 15 * (samples + cold_samples))
        finally:
            await _stop(viewer, 10)
        if not raw:
            raise RuntimeError("the controller-path viewer exited without a result")
        result: dict[str, Any] = json.loads(raw)
        result["demo_up_s"] = round(up_s, 1)
        return result


# ---------------------------------------------------------------------------------------------------------------
# the viewer process


class Parent:
    """The demo parent's cookie session and CSRF token on the controller's JSON API."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url, self.csrf = http, url, ""

    async def sign_in(self, username: str, password: str) -> None:
        form = {"username": username, "password": password}
        async with self.http.post(f"{self.url}/signin", data=form, headers={"Origin": self.url}, allow_redirects=False):
            pass
        self.csrf = (await self.call("GET", "/api/session"))["csrf_token"]

    async def call(self, method: str, path: str, body: object = None) -> Any:
        headers = {"Origin": self.url, "X-CSRF-Token": self.csrf}
        async with self.http.request(method, f"{self.url}{path}", json=body, headers=headers) as response:
            answer = await response.json()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: HTTP {response.status} {answer}")
            return answer


@dataclass
class View:
    session: int
    node_url: str
    pc: RTCPeerConnection
    location: str
    first_frame: asyncio.Future[float]
    reader: asyncio.Task[None] | None = None


async def open_view(parent: Parent, camera: int, child: int, device: str) -> View:
    """POST /api/live/watch, then the WHEP exchange at the node; the view reads (decodes) frames until closed."""
    started = await parent.call("POST", "/api/live/watch", {"camera": camera, "child_id": child, "device": device})
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # never the answer's ICE servers: loopback only
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    view = View(int(started["session"]), str(started["node_url"]), pc, "", first)

    async def read(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()  # an av.VideoFrame: decoded by aiortc's H.264 decoder (PyAV)
                if not first.done():
                    first.set_result(time.monotonic())

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        view.reader = asyncio.ensure_future(read(track))

    transceiver = pc.addTransceiver("video", direction="recvonly")
    adapter.force_codecs(transceiver, VideoCodec.H264)
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Authorization": f"Bearer {started['token']}", "Content-Type": "application/sdp"}
    async with parent.http.post(started["whep_url"], data=pc.localDescription.sdp.encode(), headers=headers) as r:
        body = await r.text()
        if r.status != 201:
            raise RuntimeError(f"WHEP at the node: HTTP {r.status} {body}")
        location = r.headers.get("Location", "")
    view.location = location if location.startswith("http") else view.node_url.rstrip("/") + location
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return view


async def close_view(parent: Parent, view: View) -> None:
    with contextlib.suppress(Exception):
        await parent.call("POST", "/api/live/end", {"session": view.session})
    with contextlib.suppress(Exception):
        async with parent.http.delete(view.location):
            pass
    await view.pc.close()
    if view.reader is not None:
        view.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await view.reader


async def sample(parent: Parent, camera: int, child: int, device: str, timeout_s: float) -> float:
    """One time to first frame in ms, from the watch request sent to the first decoded frame."""
    t0 = time.monotonic()
    view = await open_view(parent, camera, child, device)
    try:
        t1 = await asyncio.wait_for(view.first_frame, timeout_s)
    finally:
        await close_view(parent, view)
    return (t1 - t0) * 1000


async def wait_cold(parent: Parent, node_url: str, session: int, timeout_s: float = 20) -> None:
    """Until the controller has dropped the camera's publication and the node has no relay and no publisher."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = await parent.call("GET", f"/api/live/status?session={session}")
        async with parent.http.get(f"{node_url}/healthz") as response:
            health = await response.json()
        if status["publish_state"] is None and health["relays"] == 0 and health["publishers"] == 0:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the camera's relay did not close between cold samples")


async def run_viewer(args: argparse.Namespace) -> dict[str, Any]:
    adapter.set_loopback_candidates(LoopbackCandidates.ONLY)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=30)) as http:
        parent = Parent(http, args.url)
        await parent.sign_in(args.username, os.environ[PASSWORD_ENV])
        mine = await parent.call("GET", "/api/live/cameras")
        child = mine["children"][0]
        cameras = [c["id"] for c in child["cameras"] if c["available"]]
        if len(cameras) < 2:
            raise RuntimeError(f"the demo parent should see two open class cameras: {child['cameras']}")
        warm_camera, cold_camera = cameras[0], cameras[1]
        child_id = int(child["child"]["id"])
        # Warm: another device keeps watching the camera (its relay up, its GOP cache full).
        t0 = time.monotonic()
        keeper = await open_view(parent, warm_camera, child_id, "bench-keeper")
        keeper_first_s = await asyncio.wait_for(keeper.first_frame, 30) - t0
        await asyncio.sleep(GOP_S + 0.5)  # past a whole GOP
        warm: list[float] = []
        try:
            for index in range(args.samples):
                await asyncio.sleep(random.uniform(0, GOP_S))  # a random point of the GOP
                warm.append(await sample(parent, warm_camera, child_id, f"bench-warm-{index}", 10))
        finally:
            await close_view(parent, keeper)
        cold: list[float] = []
        node_url = keeper.node_url
        last = keeper.session
        for index in range(args.cold_samples):
            await wait_cold(parent, node_url, last)
            await asyncio.sleep(random.uniform(0, GOP_S))
            t0 = time.monotonic()
            view = await open_view(parent, cold_camera, child_id, f"bench-cold-{index}")
            last = view.session
            try:
                cold.append((await asyncio.wait_for(view.first_frame, 15) - t0) * 1000)
            finally:
                await close_view(parent, view)
    return {
        "warm_ms": [round(s, 1) for s in warm],
        "cold_ms": [round(s, 1) for s in cold],
        "keeper_first_frame_s": round(keeper_first_s, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", nargs="?", choices=["viewer"], help="(internal) the viewer process")
    parser.add_argument("--url", help="the controller (viewer role)")
    parser.add_argument("--username", help="the parent (viewer role; password in $" + PASSWORD_ENV + ")")
    parser.add_argument("--samples", type=int, default=20, help="warm samples (default 20)")
    parser.add_argument("--cold-samples", type=int, default=20, help="cold samples (default 20)")
    args = parser.parse_args(argv)
    if args.role == "viewer":
        result = asyncio.run(run_viewer(args))
    else:
        result = asyncio.run(measure(args.samples, args.cold_samples))
        for key in ("warm_ms", "cold_ms"):
            if result[key]:
                result[key.replace("_ms", "_p50")] = round(statistics.median(result[key]), 1)
                result[key.replace("_ms", "_p90")] = round(percentile(result[key], 0.9), 1)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
