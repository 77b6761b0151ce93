"""Discovery benchmark: N simulated cameras, time from the probe to every camera ready (profiles and URIs read).

    .venv/bin/python -m benchmarks.discovery [--cameras 50] [--mode netns|loopback] [--passes 3]

netns (default when root): the cameras in one network namespace (one simulator process, one address each),
the agent in another, on a bridge; discovery by multicast, as on a site. loopback: the cameras on 127.0.1.x
and unicast probes to that range (no multicast leaves the machine's namespace).

Each pass runs in a fresh agent process's scanner: the first pass pays for new connections (the WSDLs are
parsed before the probe and timed separately), later passes reuse them. Prints the conditions and figures,
then a JSON object as the last line with `cameras`, `ready` and `seconds_to_all_ready` (first pass).
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
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
PASSWORD = "bench-p@ss:w/rd%"


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Runs inside the agent's namespace (or on loopback): WSDL parse, then `passes` discovery passes."""
    from agents.config import AgentConfig
    from agents.discovery.credentials import CredentialBook
    from agents.discovery.onvif_client import load_documents
    from agents.discovery.scanner import Scanner

    config = AgentConfig.model_validate(json.loads(args.inner))
    started = time.monotonic()
    await load_documents()
    wsdl_s = time.monotonic() - started
    scanner = Scanner(config, CredentialBook.from_config(config))
    passes = []
    try:
        for _ in range(args.passes):
            result = await scanner.scan()
            ready = [r for r in result.reports if r.state == "ready"]
            times = sorted(result.finished_s.values())
            passes.append(
                {
                    "found": len(result.reports),
                    "ready": len(ready),
                    "states": sorted({r.state.value for r in result.reports}),
                    "seconds_to_all_ready": round(times[-1], 3) if times and len(ready) == args.cameras else None,
                    "median_report_s": round(statistics.median(times), 3) if times else None,
                    "pass_seconds": round(result.seconds, 3),
                    "probe_seconds": round(result.probe_seconds, 3),
                }
            )
    finally:
        await scanner.close()
    return {"wsdl_parse_s": round(wsdl_s, 3), "passes": passes}


def agent_config(mode: str, cameras: int, concurrency: int, wait_s: float) -> dict[str, Any]:
    site: dict[str, Any]
    if mode == "netns":
        site = {"camera_networks": ["198.18.1.0/24"]}
    else:
        site = {
            "camera_networks": ["127.0.1.0/24"],
            "multicast": False,
            "unicast_targets": [f"127.0.1.1-127.0.1.{cameras}"],
            "unicast_rate_per_s": 2000,
        }
    return {
        "state_dir": tempfile.gettempdir(),
        "site": site,
        "credentials": {"username": "admin", "password": PASSWORD},
        "timeouts": {"probe_wait_s": wait_s, "device_deadline_s": 10, "max_concurrent_devices": concurrency},
    }


@contextlib.asynccontextmanager
async def simulator(prefix: Sequence[str], first_host: str, cameras: int) -> AsyncIterator[float]:
    """The simulator process, until it is ready; yields its start-up time."""
    argv = [*prefix, PYTHON, "-m", "simulator", "--cameras", str(cameras), "--first-host", first_host, "--json"]
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO, env={**os.environ, "KETNOI_SIM_PASSWORD": PASSWORD}, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            if not line:
                raise RuntimeError("the simulator exited before it was ready")
            if json.loads(line).get("ready"):
                break
        yield time.monotonic() - started
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def run_agent(prefix: Sequence[str], args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    argv = [*prefix, PYTHON, "-m", "benchmarks.discovery", "--inner", json.dumps(config)]
    argv += ["--cameras", str(args.cameras), "--passes", str(args.passes)]
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 300)
    if process.returncode != 0:
        raise RuntimeError(f"the agent side failed: {stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(stdout.decode().splitlines()[-1])
    return result


async def outer(args: argparse.Namespace) -> dict[str, Any]:
    config = agent_config(args.mode, args.cameras, args.concurrency, args.wait)
    if args.mode == "netns":
        sys.path.insert(0, str(REPO))
        from tests.netns import Lab

        with Lab() as lab:
            agent = lab.add("agent", "198.18.0.10/16")
            cams = lab.add("cams", *[f"198.18.1.{i}/16" for i in range(1, args.cameras + 1)])
            async with simulator(cams.command([]), "198.18.1.1", args.cameras) as startup:
                measured = await run_agent(agent.command([]), args, config)
    else:
        async with simulator([], "127.0.1.1", args.cameras) as startup:
            measured = await run_agent([], args, config)
    return {"simulator_startup_s": round(startup, 3), **measured}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.discovery", description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=50, help="simulated cameras (default 50)")
    parser.add_argument("--mode", choices=["netns", "loopback"], default="netns" if os.geteuid() == 0 else "loopback")
    parser.add_argument("--passes", type=int, default=3, help="discovery passes in one agent process (default 3)")
    parser.add_argument("--concurrency", type=int, default=16, help="devices interrogated at once (default 16)")
    parser.add_argument("--wait", type=float, default=2.0, help="probe wait in seconds (default 2)")
    parser.add_argument("--inner", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner is not None:
        print(json.dumps(asyncio.run(measure(args))))
        return 0
    if args.mode == "netns" and args.cameras > 250:
        parser.error("netns mode puts the cameras in 198.18.1.0/24: at most 250")
    figures = asyncio.run(outer(args))
    first = figures["passes"][0]
    cpu = os.cpu_count()
    print(f"conditions: {args.cameras} simulated cameras in one simulator process, mode {args.mode}")
    print(f"  {platform.python_implementation()} {platform.python_version()}, {cpu} CPU(s), {platform.machine()}")
    print(f"  probe wait {args.wait} s (interrogation starts as each device answers), concurrency {args.concurrency}")
    print("  per camera: GetSystemDateAndTime, GetDeviceInformation, GetServices, GetProfiles, 2x GetStreamUri,")
    print("  GetSnapshotUri over onvif-zeep-async's WSDLs and zeep, WS-Security digest with clock offset")
    print(f"simulator start-up: {figures['simulator_startup_s']} s")
    print(f"WSDL parse (once per agent process, before the probe): {figures['wsdl_parse_s']} s")
    for index, one in enumerate(figures["passes"], 1):
        print(
            f"pass {index}: {one['ready']}/{args.cameras} ready (states {one['states']}); all ready after "
            f"{one['seconds_to_all_ready']} s, median report {one['median_report_s']} s; whole pass "
            f"{one['pass_seconds']} s (probe wait included)"
        )
    warm = [p["seconds_to_all_ready"] for p in figures["passes"][1:] if p["seconds_to_all_ready"] is not None]
    summary = {
        "cameras": args.cameras,
        "ready": first["ready"],
        "seconds_to_all_ready": first["seconds_to_all_ready"],
        "warm_seconds_to_all_ready": warm,
        "median_report_s": first["median_report_s"],
        "pass_seconds": first["pass_seconds"],
        "wsdl_parse_s": figures["wsdl_parse_s"],
        "mode": args.mode,
        "concurrency": args.concurrency,
        "cpus": cpu,
        "goal_s": 3.0,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
