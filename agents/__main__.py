"""`python -m agents`: the edge agent's command line (discover, run, enrol, approve)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.config import AgentConfig, load_agent_config
from agents.discovery.credentials import CredentialBook
from agents.discovery.scanner import Scanner
from agents.inventory import Inventory
from agents.networks import TargetError, check_target
from agents.service import VERSION, Agent, HealthPortError
from common.config import ConfigError
from common.logs import SECRETS, setup_logging
from protocol.camera import CameraReport

logger = logging.getLogger("agents")


def _target(value: str) -> str:
    try:
        return check_target(value)
    except TargetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agents", description="ketnoi edge agent for a kindergarten site")
    parser.add_argument(
        "--config", type=Path, default=None, help="TOML configuration file (environment: KETNOI_AGENT_*)"
    )
    parser.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    discover = commands.add_parser("discover", help="one discovery pass; print what was found")
    discover.add_argument("--json", action="store_true", help="print a JSON array of camera reports")
    discover.add_argument(
        "--target", action="append", default=[], type=_target, metavar="ADDR", help="extra unicast target or range"
    )
    discover.add_argument("--wait", type=float, default=None, metavar="S", help="seconds to collect probe replies")
    discover.add_argument("--no-multicast", action="store_true", help="send unicast probes only")
    discover.add_argument("--no-save", action="store_true", help="do not record the results in the inventory")

    commands.add_parser("run", help="run the agent: periodic discovery, inventory, uplink, /healthz")

    enrol = commands.add_parser("enrol", help="enrol with a controller using a technician's one-time code")
    enrol.add_argument("--controller", required=True, metavar="URL", help="the controller's base URL")
    enrol.add_argument("--code", required=True, help="the one-time enrolment code")

    approve = commands.add_parser("approve", help="approve a device outside the camera networks, by endpoint ref")
    approve.add_argument("endpoint_ref", help="the device's endpoint reference (urn:uuid:...)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_agent_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level or config.log_level)
    try:
        if args.command == "discover":
            return asyncio.run(_discover(config, args))
        if args.command == "run":
            return asyncio.run(_run(config))
        if args.command == "enrol":
            return asyncio.run(_enrol(config, args.controller, args.code))
        if args.command == "approve":
            return asyncio.run(_approve(config, args.endpoint_ref))
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unknown command {args.command}")


async def _open_inventory(state_dir: Path) -> Inventory | None:
    try:
        return await Inventory.open(state_dir)
    except (OSError, sqlite3.Error) as exc:
        logger.warning("cannot open the inventory in %s (%s): results are not saved, approvals unknown", state_dir, exc)
        return None


async def _discover(config: AgentConfig, args: argparse.Namespace) -> int:
    scanner = Scanner(config, CredentialBook.from_config(config))
    inventory = await _open_inventory(config.state_dir)
    try:
        result = await scanner.scan(
            approved=inventory.approved if inventory is not None else (),
            extra_targets=args.target,
            wait_s=args.wait,
            multicast=False if args.no_multicast else None,
        )
        reports = result.reports
        if inventory is not None and not args.no_save:
            reports = await inventory.record_many(reports)
    finally:
        if inventory is not None:
            await inventory.close()
        await scanner.close()
    reports = sorted(reports, key=lambda r: (r.address, r.endpoint_ref))
    print(SECRETS.scrub(format_json(reports) if args.json else format_table(reports)))
    logger.info("discovery: %d device(s) in %.2f s (probe %.2f s)", len(reports), result.seconds, result.probe_seconds)
    return 0


def _resolution(report: CameraReport, role: str) -> str:
    profile = next((p for p in report.profiles if p.role == role), None)
    return "-" if profile is None else f"{profile.width}x{profile.height}"


def format_json(reports: Sequence[CameraReport]) -> str:
    return json.dumps([r.model_dump(mode="json") for r in reports])


def format_table(reports: Sequence[CameraReport]) -> str:
    header = ("ENDPOINT REF", "ADDRESS", "STATE", "MODEL", "MAIN", "SUB", "REASON")
    rows = [
        (
            r.endpoint_ref,
            r.address,
            r.state.value,
            (r.device.model if r.device else "") or "-",
            _resolution(r, "main"),
            _resolution(r, "sub"),
            r.reason,
        )
        for r in reports
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in [header, *rows]
    ]
    lines.append(f"{len(reports)} device(s)")
    return "\n".join(line.rstrip() for line in lines)


async def _run(config: AgentConfig) -> int:
    from agents.enrolment import EnrolmentError, TokenStore
    from agents.uplink import default_hostname

    try:
        stored = await TokenStore(config.state_dir).aload()
    except EnrolmentError as exc:
        logger.error("%s", exc)
        return 2
    inventory = await Inventory.open(config.state_dir)
    try:
        agent = Agent(
            config,
            CredentialBook.from_config(config),
            inventory,
            token=None if stored is None else stored.token,
            controller_url=None if stored is None else stored.controller_url,
            hostname=default_hostname(),
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, agent.stop)
        logger.info("agent %s starting; state in %s", VERSION, config.state_dir)
        try:
            await agent.run()
        except HealthPortError as exc:
            logger.error("%s (set health_port)", exc)
            return 2
        logger.info("agent stopped")
    finally:
        await inventory.close()
    return 0


async def _enrol(config: AgentConfig, controller_url: str, code: str) -> int:
    from agents.enrolment import EnrolmentError, TokenStore, enrol
    from agents.uplink import default_hostname

    try:
        response = await enrol(controller_url, code, hostname=default_hostname(), version=VERSION)
        await TokenStore(config.state_dir).asave(controller_url, response)
    except EnrolmentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"enrolled as agent {response.agent_id} for site {response.site_name} ({response.site_id})")
    return 0


async def _approve(config: AgentConfig, endpoint_ref: str) -> int:
    async with await Inventory.open(config.state_dir) as inventory:
        added = await inventory.approve(endpoint_ref)
    print(f"{endpoint_ref}: {'approved' if added else 'already approved'}; the running agent picks it up next pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
