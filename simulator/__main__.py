"""`python -m simulator`: run N simulated ONVIF cameras until SIGINT or SIGTERM.

Example: python -m simulator --cameras 8 --password-file /run/secrets/cam --json
Every camera i binds FIRST_HOST+i (loopback addresses need no set-up) with ONVIF/snapshot on --http-port, RTSP on
--rtsp-port and WS-Discovery on UDP 3702. The password comes from --password-file or KETNOI_SIM_PASSWORD and is
never printed. With --json, one JSON line per camera is printed when all are ready, then {"ready": true}.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import signal
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from common.config import ConfigError, load_config
from common.logs import SECRETS, setup_logging
from simulator.camera import SimulatedCamera
from simulator.fleet import Fleet, FleetConfig
from simulator.spec import CameraSpec

ENV_PREFIX = "KETNOI_SIM"


class UsageError(Exception):
    """The command line or configuration cannot be used; one line per problem."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Run simulated ONVIF cameras (WS-Discovery, SOAP device/media services, RTSP, snapshot).",
        epilog=f"Every option can also be set in a TOML file (--config) or as {ENV_PREFIX}_<OPTION> in the "
        f"environment; flags win. The password is read from --password-file or {ENV_PREFIX}_PASSWORD.",
    )
    add = parser.add_argument
    add("--config", type=Path, help="TOML file with any of the options below (underscores, not dashes)")
    add("--cameras", type=int, help="how many cameras to run (default 1)")
    add("--first-host", help="address of camera 0; camera i binds this plus i (default 127.0.1.1)")
    add("--http-port", type=int, help="ONVIF and snapshot HTTP port (default 8080)")
    add("--rtsp-port", type=int, help="RTSP port (default 8554)")
    add("--username", help="the cameras' user name (default admin)")
    add("--password-file", type=Path, help=f"file holding the cameras' password (or set {ENV_PREFIX}_PASSWORD)")
    add("--no-auth", action="store_true", default=None, help="run every camera without authentication")
    add("--name-prefix", help="camera i is named PREFIX+i (default cam)")
    add("--cache-dir", type=Path, help="directory caching encoded H.264 loops between runs")
    add(
        "--quirk",
        action="append",
        dest="quirks",
        metavar="N:FIELD=VALUE",
        help="give camera N a quirk, e.g. 0:clock_offset_s=1e7, 1:hostile_soap=entities, 2:no_auth=true (repeatable)",
    )
    add("--json", action="store_true", help='print one JSON line per camera when ready, then {"ready": true}')
    add("--log-level", help="debug, info, warning (default) or error")
    return parser


def load(args: argparse.Namespace) -> tuple[FleetConfig, list[CameraSpec]]:
    """The validated configuration and the cameras' specs, or UsageError."""
    flags = {key: value for key, value in vars(args).items() if key not in {"config", "json"} and value is not None}
    try:
        base = load_config(FleetConfig, args.config, ENV_PREFIX)
        config = FleetConfig.model_validate({**base.model_dump(exclude_unset=True), **flags})
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except ValidationError as exc:
        lines = [f"  --{_flag(err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise UsageError("invalid option:\n" + "\n".join(lines)) from None
    password = _password(config)
    try:
        specs = config.specs(password)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return config, specs


def _flag(loc: tuple[int | str, ...]) -> str:
    name = str(loc[0]) if loc else "?"
    return "quirk" if name == "quirks" else name.replace("_", "-")


def _password(config: FleetConfig) -> str:
    if config.password_file is not None:
        try:
            password = config.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read the password file {config.password_file}: {exc.strerror}") from None
        if not password:
            raise UsageError(f"the password file {config.password_file} is empty")
    elif config.password is not None:
        password = config.password.get_secret_value()
    else:
        password = ""
    if not password and not config.no_auth:
        raise UsageError(f"no password: give --password-file or set {ENV_PREFIX}_PASSWORD (or run with --no-auth)")
    SECRETS.add(password)
    return password


def describe(camera: SimulatedCamera) -> dict[str, Any]:
    """What a parent process needs to know about one running camera (never the password)."""
    return {
        "name": camera.name,
        "endpoint_ref": camera.spec.endpoint_ref,
        "host": camera.spec.host,
        "device_xaddr": camera.device_xaddr,
        "rtsp": camera.stream_urls,
        "snapshot": camera.snapshot_urls,
    }


async def run(config: FleetConfig, specs: list[CameraSpec], *, as_json: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    fleet = Fleet(specs, cache_dir=config.cache_dir)
    try:
        await fleet.start()
    except OSError as exc:
        hint = " (add the address to an interface first)" if exc.errno == errno.EADDRNOTAVAIL else ""
        print(f"simulator: error: cannot start the cameras: {exc.strerror or exc}{hint}", file=sys.stderr)
        return 1
    try:
        lines = [json.dumps(describe(camera)) for camera in fleet.cameras] + [json.dumps({"ready": True})]
        if not as_json:
            lines = [
                f"{camera.name}  {camera.spec.host}  {camera.device_xaddr}  {camera.stream_urls.get('main', '')}"
                for camera in fleet.cameras
            ] + [f"{len(fleet.cameras)} cameras ready; Ctrl-C to stop"]
        await asyncio.to_thread(_emit, lines)
        await stop.wait()
    finally:
        await fleet.stop()
    return 0


def _emit(lines: list[str]) -> None:
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config, specs = load(args)
    except UsageError as exc:
        print(f"simulator: error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    return asyncio.run(run(config, specs, as_json=args.json))


if __name__ == "__main__":
    sys.exit(main())
