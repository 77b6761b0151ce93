"""The demo's media nodes: `python -m media serve` processes on loopback, sharing the controller's media secret.

Each node listens on 127.0.0.1 at consecutive ports, offers 127.0.0.1 as its ICE candidate (the demo stays on
this machine), reports its load to the controller and accepts WHEP from the controller's pages (CORS).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from demo.processes import Child, ChildFailed


@dataclass(frozen=True)
class MediaNode:
    child: Child
    node_id: str
    url: str


WaitHttp = Callable[[str, Child, float], Awaitable[None]]


async def start_media_nodes(
    count: int,
    first_port: int,
    controller_url: str,
    secret_file: Path,
    logs: Path,
    timeout: float,  # noqa: ASYNC109
    wait: WaitHttp,
) -> list[MediaNode]:
    """Start `count` nodes once the controller has written its media secret; `wait` until each answers /healthz."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(secret_file.exists):  # the controller creates it (0600) as it starts
        if time.monotonic() > deadline:
            raise ChildFailed(f"the controller wrote no media secret at {secret_file} within {timeout:.0f} s")
        await asyncio.sleep(0.1)
    nodes: list[MediaNode] = []
    for index in range(count):
        node_id = f"media-{index + 1}"
        port = first_port + index
        url = f"http://127.0.0.1:{port}"
        env = {
            "KETNOI_MEDIA_NODE_ID": node_id,
            "KETNOI_MEDIA_HOST": "127.0.0.1",
            "KETNOI_MEDIA_PORT": str(port),
            "KETNOI_MEDIA_PUBLIC_URL": url,
            "KETNOI_MEDIA_CONTROLLER_URL": controller_url,
            "KETNOI_MEDIA_MEDIA_SECRET_FILE": str(secret_file),
            "KETNOI_MEDIA_LOOPBACK_CANDIDATES": "true",
            "KETNOI_MEDIA_CORS_ORIGINS": json.dumps([controller_url]),
            "KETNOI_MEDIA_REPORT_INTERVAL_S": "2",
        }
        child = Child(node_id, ["media", "serve"], logs=logs, env=env)
        nodes.append(MediaNode(child, node_id, url))
        await child.start()
    for node in nodes:
        await wait(f"{node.url}/healthz", node.child, max(1.0, deadline - time.monotonic()))
    return nodes
