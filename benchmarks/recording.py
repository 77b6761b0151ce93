"""Recording benchmark: N simulated 2 Mbit/s streams recorded by the agent and by ffmpeg, in one run.

    .venv/bin/python -m benchmarks.recording [--streams 16] [--seconds 60] [--warmup 8]

One simulator process serves N cameras (720p25 H.264 at 2 Mbit/s, 2 s GOP) on 127.0.3.1.. without
authentication (so that no password appears in the ffmpeg processes' arguments). The same N streams are then
recorded at the same time by
  - the agent's recorder, in a process of its own (`--inner`), remuxing without decoding to fragmented MP4
    segments (over TCP: its own RTSP client and MP4 fragments on the event loop, fdatasync once per fragment), and
  - N `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment` processes, one per stream.
After a warm-up (connections made, every recorder writing), the CPU time (user + system, from /proc/<pid>/stat)
of the agent's process and of the ffmpeg processes is sampled over --seconds. The simulator's CPU is reported
but not counted. Prints the conditions and figures, then a JSON object as the last line with `streams`,
`cpu_s_per_stream_minute`, `ffmpeg_cpu_s_per_stream_minute`, `ratio_vs_ffmpeg` and `streams_per_core`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
CACHE_DIR = REPO / "var" / "bench-loops"
"""Encoded simulator loops are kept here between runs (encoding one takes about a second per camera)."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SEGMENT_S = 60


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the command: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of every thread of a process, from /proc/<pid>/task."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        with contextlib.suppress(OSError):
            for line in status.read_text(encoding="ascii").splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[1])
    return total


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------------------------
# The agent's side, in its own process


async def inner(args: argparse.Namespace) -> int:
    """Record the cameras until SIGTERM as the agent does; print the recorders' figures as JSON at the end."""
    cameras: list[dict[str, Any]] = json.loads(args.inner)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with agent_recorder(cameras, Path(args.out), hooks=not args.no_hooks) as (kind, stats):
        print(json.dumps({"started": True, "recorder": kind}), flush=True)
        await stop.wait()
        figures = {
            camera: {"frames": s.frames_total, "bytes": s.bytes_total, "state": str(s.state)}
            for camera, s in stats().items()
        }
    print(json.dumps({"stopped": True, "cameras": figures}), flush=True)
    return 0


@contextlib.asynccontextmanager
async def agent_recorder(
    cameras: list[dict[str, Any]], out: Path, *, hooks: bool = True
) -> AsyncIterator[tuple[str, Any]]:
    """The agent's recording supervisor with the agent's hooks (image health sampling every 10 s, retention's
    free-space check before each segment; without them if `hooks` is false), recording the given cameras."""
    from datetime import UTC, datetime

    from agents.discovery.credentials import Login
    from agents.health.config import HealthConfig
    from agents.health.monitor import ImageHealth
    from agents.recording.config import RecordingConfig
    from agents.recording.index import DB_FILE, SegmentIndex
    from agents.recording.supervisor import RecordingSupervisor
    from agents.storage.config import RetentionConfig
    from agents.storage.retention import Retention
    from protocol.camera import CameraReport, CameraState, StreamProfile

    root = out / "recordings"
    now = datetime.now(UTC)
    reports = [
        CameraReport(
            endpoint_ref=camera["endpoint_ref"],
            address=camera["host"],
            state=CameraState.READY,
            reason="benchmark",
            profiles=[
                StreamProfile(
                    token="main",
                    name="main",
                    role="main",
                    encoding="H264",
                    width=1280,
                    height=720,
                    stream_uri=camera["rtsp"]["main"],
                )
            ],
            first_seen=now,
            last_seen=now,
            changed_at=now,
        )
        for camera in cameras
    ]
    async with await SegmentIndex.open(out / DB_FILE) as index:
        health = ImageHealth(HealthConfig(), out / "snapshots")
        retention = Retention(RetentionConfig(floor_percent=1, headroom_bytes=0), root, index)
        supervisor = RecordingSupervisor(
            RecordingConfig(segment_s=SEGMENT_S),
            root,
            index,
            lambda ref, address: Login("", ""),  # the simulator runs without authentication here
            on_keyframe=health.on_keyframe if hooks else None,
            before_segment=retention.before_segment if hooks else None,
            on_write_error=retention.on_write_error if hooks else None,
        )
        supervisor.sync(reports)
        task = asyncio.create_task(supervisor.run())
        try:
            await asyncio.wait_for(supervisor.started.wait(), 30)
            kind = "with image health and retention hooks" if hooks else "without hooks (--no-hooks)"
            yield f"agents.recording.RecordingSupervisor {kind}", supervisor.stats
        finally:
            supervisor.stop()
            await asyncio.wait_for(task, 30)
            health.close()


# ---------------------------------------------------------------------------------------------------------------
# The outer harness


@contextlib.asynccontextmanager
async def simulator(streams: int, first_host: str) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    """The simulator process serving `streams` cameras; yields its pid and the cameras (as it describes them)."""
    argv = [PYTHON, "-m", "simulator", "--cameras", str(streams), "--first-host", first_host, "--no-auth", "--json"]
    argv += ["--cache-dir", str(CACHE_DIR)]
    process = await asyncio.create_subprocess_exec(*argv, cwd=REPO, stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        cameras: list[dict[str, Any]] = []
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), 120)
            if not line:
                raise RuntimeError("the simulator exited before it was ready")
            data = json.loads(line)
            if data.get("ready"):
                break
            cameras.append(data)
        yield process.pid, cameras
    finally:
        await _terminate(process)


async def _terminate(process: asyncio.subprocess.Process, grace_s: float = 15) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            process.kill()
            await process.wait()


def ffmpeg_argv(url: str, out: Path) -> list[str]:
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
        "-rtsp_transport", "tcp", "-i", url,
        "-c", "copy", "-f", "segment", "-segment_time", str(SEGMENT_S), "-segment_format", "mp4",
        "-reset_timestamps", "1", str(out / "%05d.mp4"),
    ]  # fmt: skip


async def warm_up(pids: Sequence[int], dirs: Sequence[Path], deadline_s: float) -> None:
    """Until every recorder has written something and the processes are alive (or the deadline)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        sizes = await asyncio.to_thread(lambda: [tree_bytes(d) for d in dirs])
        if all(size > 0 for size in sizes):
            return
        await asyncio.sleep(0.5)
    missing = [str(d) for d in dirs if tree_bytes(d) == 0]
    raise RuntimeError(f"{len(missing)} recorder(s) wrote nothing during the warm-up: {missing[:4]}")


async def outer(args: argparse.Namespace) -> dict[str, Any]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ketnoi-bench-rec-"))
    agent_out = work / "agent"
    agent_out.mkdir()
    ffmpeg_dirs = [work / "ffmpeg" / f"{i:03d}" for i in range(args.streams)]
    for d in ffmpeg_dirs:
        d.mkdir(parents=True)
    ffmpegs: list[asyncio.subprocess.Process] = []
    agent: asyncio.subprocess.Process | None = None
    try:
        async with simulator(args.streams, args.first_host) as (sim_pid, cameras):
            urls = [camera["rtsp"]["main"] for camera in cameras]
            sim_cpu0 = cpu_seconds(sim_pid)
            agent = await asyncio.create_subprocess_exec(
                PYTHON, "-m", "benchmarks.recording", "--inner", json.dumps(cameras), "--out", str(agent_out),
                *(["--no-hooks"] if args.no_hooks else []),
                cwd=REPO, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert agent.stdout is not None
            started = json.loads(await asyncio.wait_for(agent.stdout.readline(), 60))
            for url, out in zip(urls, ffmpeg_dirs, strict=True):
                ffmpegs.append(
                    await asyncio.create_subprocess_exec(
                        *ffmpeg_argv(url, out), stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
                    )
                )
            await warm_up([agent.pid, *(p.pid for p in ffmpegs)], [agent_out, *ffmpeg_dirs], 60 + args.streams)
            await asyncio.sleep(args.warmup)  # past the start-up costs (loop encodes, first keyframes)

            t0 = time.monotonic()
            agent0, ffmpeg0 = cpu_seconds(agent.pid), [cpu_seconds(p.pid) for p in ffmpegs]
            switches0 = context_switches(agent.pid), sum(context_switches(p.pid) for p in ffmpegs)
            sim0 = cpu_seconds(sim_pid)
            bytes0 = tree_bytes(agent_out), sum(tree_bytes(d) for d in ffmpeg_dirs)
            await asyncio.sleep(args.seconds)
            window = time.monotonic() - t0
            agent_cpu = cpu_seconds(agent.pid) - agent0
            switches1 = context_switches(agent.pid), sum(context_switches(p.pid) for p in ffmpegs)
            dead = [p.returncode for p in ffmpegs if p.returncode is not None]
            ffmpeg_cpu = sum(
                cpu_seconds(p.pid) - c for p, c in zip(ffmpegs, ffmpeg0, strict=True) if p.returncode is None
            )
            sim_cpu = cpu_seconds(sim_pid) - sim0
            bytes1 = tree_bytes(agent_out), sum(tree_bytes(d) for d in ffmpeg_dirs)
            sim_total = cpu_seconds(sim_pid) - sim_cpu0
            agent.send_signal(signal.SIGTERM)
            tail = (await asyncio.wait_for(agent.stdout.read(), 30)).decode().strip().splitlines()
            agent_stats = json.loads(tail[-1]) if tail else {}
    finally:
        for process in ffmpegs:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)  # ffmpeg finishes its segment and exits
        for process in ffmpegs:
            await _terminate(process, 10)
        if agent is not None:
            await _terminate(agent)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    stream_minutes = args.streams * window / 60
    return {
        "window_s": window,
        "agent_recorder": started.get("recorder"),
        "agent_cpu_s": agent_cpu,
        "ffmpeg_cpu_s": ffmpeg_cpu,
        "ffmpeg_exited": dead,
        "agent_switches_per_s": (switches1[0] - switches0[0]) / window,
        "ffmpeg_switches_per_s": (switches1[1] - switches0[1]) / window,
        "simulator_cpu_s": sim_cpu,
        "simulator_cpu_total_s": sim_total,
        "agent_mbit_s": (bytes1[0] - bytes0[0]) * 8 / window / 1e6,
        "ffmpeg_mbit_s": (bytes1[1] - bytes0[1]) * 8 / window / 1e6,
        "stream_minutes": stream_minutes,
        "agent_cameras": agent_stats.get("cameras", {}),
        "work": str(work) if args.keep else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recording", description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=16, help="simulated 2 Mbit/s streams (default 16; try 64)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds after the warm-up (default 60)")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds recorded before measuring (default 8)")
    parser.add_argument(
        "--first-host", default="127.0.3.1", help="loopback address of camera 0 (default 127.0.3.1; tests use 127.0.1)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the recordings (their directory is printed)")
    parser.add_argument(
        "--no-hooks", action="store_true", help="record without image health and retention (the recorder alone)"
    )
    parser.add_argument("--inner", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner is not None:
        return asyncio.run(inner(args))
    if not 1 <= args.streams <= 250:
        parser.error("--streams must be in 1..250")
    if not args.first_host.startswith("127."):
        parser.error("--first-host must be a loopback address (127.0.0.0/8): nothing leaves this machine")
    if shutil.which("ffmpeg") is None:
        parser.error("ffmpeg is not installed")
    figures = asyncio.run(outer(args))
    cpu = os.cpu_count() or 1
    minutes = figures["stream_minutes"]
    agent_rate = figures["agent_cpu_s"] / minutes
    ffmpeg_rate = figures["ffmpeg_cpu_s"] / minutes
    per_core = args.streams / (figures["agent_cpu_s"] / figures["window_s"]) if figures["agent_cpu_s"] else None
    version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"conditions: {args.streams} streams, 720p25 H.264 ~2 Mbit/s, 2 s GOP, RTSP over TCP on loopback,")
    print(f"  from one simulator process (its CPU not counted); {SEGMENT_S} s segments; warm-up {args.warmup} s,")
    print(f"  measured {figures['window_s']:.1f} s; {platform.python_implementation()} {platform.python_version()},")
    print(f"  {cpu} CPU(s), {platform.machine()}, {platform.platform()}; {version}")
    print(f"  agent recorder: {figures['agent_recorder']} (one process, all streams); ffmpeg: one process per stream")
    print("  the agent fdatasyncs each segment file once per fragment (1 s) for power-loss safety; ffmpeg does not")
    print(
        f"agent:  {figures['agent_cpu_s']:.2f} CPU-s = {agent_rate:.3f} CPU-s per stream-minute, "
        f"{figures['agent_mbit_s']:.1f} Mbit/s written, {figures['agent_switches_per_s']:.0f} context switches/s"
    )
    print(
        f"ffmpeg: {figures['ffmpeg_cpu_s']:.2f} CPU-s = {ffmpeg_rate:.3f} CPU-s per stream-minute, "
        f"{figures['ffmpeg_mbit_s']:.1f} Mbit/s written, {figures['ffmpeg_switches_per_s']:.0f} context switches/s"
        + (f"; {len(figures['ffmpeg_exited'])} ffmpeg process(es) exited early" if figures["ffmpeg_exited"] else "")
    )
    print(
        f"simulator: {figures['simulator_cpu_s']:.2f} CPU-s in the window "
        f"({figures['simulator_cpu_s'] / figures['window_s']:.2f} of a core serving {2 * args.streams} sessions)"
    )
    if figures["agent_mbit_s"] < 0.9 * figures["ffmpeg_mbit_s"]:
        print(
            f"WARNING: the agent wrote {figures['agent_mbit_s']:.1f} Mbit/s against ffmpeg's "
            f"{figures['ffmpeg_mbit_s']:.1f}: it did not record every stream in full; the figures do not compare"
        )
    states = Counter(c.get("state") for c in figures["agent_cameras"].values())
    print(f"agent recorders at the end: {dict(states)}")
    ratio = agent_rate / ffmpeg_rate if ffmpeg_rate else None
    print(f"ratio agent/ffmpeg: {ratio:.2f} (goal <= 0.8)" if ratio else "ratio: n/a")
    print(f"streams per core (agent): {per_core:.0f} (goal >= 200)" if per_core else "streams per core: n/a")
    summary = {
        "streams": args.streams,
        "seconds": round(figures["window_s"], 1),
        "cpu_s_per_stream_minute": round(agent_rate, 4),
        "ffmpeg_cpu_s_per_stream_minute": round(ffmpeg_rate, 4),
        "ratio_vs_ffmpeg": round(ratio, 3) if ratio else None,
        "streams_per_core": round(per_core, 1) if per_core else None,
        "agent_mbit_s": round(figures["agent_mbit_s"], 2),
        "ffmpeg_mbit_s": round(figures["ffmpeg_mbit_s"], 2),
        "simulator_cpu_s": round(figures["simulator_cpu_s"], 2),
        "agent_recorder": figures["agent_recorder"],
        "agent_complete": figures["agent_mbit_s"] >= 0.9 * figures["ffmpeg_mbit_s"],
        "cpus": cpu,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
