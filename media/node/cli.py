"""The media node's command line: `serve` runs the node until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from common.config import ConfigError
from common.logs import setup_logging
from media.node.app import build_app
from media.node.config import NodeConfig, load_media_secret, load_node_config

logger = logging.getLogger("media")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m media", description="ketnoi media node (aiortc)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the node: WHIP, WHEP, meetings, control, /metrics")
    serve.add_argument(
        "--config", type=Path, default=None, help="TOML configuration file (environment: KETNOI_MEDIA_*)"
    )
    return parser


async def serve(
    config: NodeConfig, secret: bytes, *, app: web.Application | None = None, freeze_gc: bool = True
) -> None:
    """Run the node (`app`: one `build_app` made, for a benchmark's probed node) until SIGINT or SIGTERM.

    Once listening, everything allocated at start-up (modules, the app, aiortc's tables) is moved out of the
    garbage collector's generations (`gc.freeze()`), so the full collections that the forwarding's allocations
    trigger no longer walk it with the event loop blocked (everything in one process: end-to-end p99 10.3 -> 6.5
    ms; `benchmarks/meetings.py` at 42 streams saw no difference beyond its run-to-run noise, media/README.md)."""
    if app is None:
        app = build_app(config, secret)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
        await site.start()
        if freeze_gc:
            gc.collect()
            gc.freeze()
        port = runner.addresses[0][1] if runner.addresses else config.port
        logger.info("media node %s listening on http://%s:%s/ (public %s)", config.node_id, config.host, port,
                    config.effective_public_url)  # fmt: skip
        await stop.wait()
        logger.info("media node %s stopping", config.node_id)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_node_config(args.config)
        setup_logging(config.log_level)
        secret = load_media_secret(config.media_secret_file)
    except ConfigError as exc:
        print(f"media: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.command == "serve":
        try:
            asyncio.run(serve(config, secret))
        except OSError as exc:
            logger.error("cannot listen on %s:%s: %s", config.host, config.port, exc.strerror or exc)
            return 1
    return 0
