"""Logging set-up for every entry point: one format, secrets filtered at the handler."""

from __future__ import annotations

import logging
import sys

from common.redact import SecretFilter

SECRETS = SecretFilter()
"""The process-wide filter; parts register their secrets here as soon as they load them."""


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SECRETS)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that are chatty at INFO about every request.
    for name in ("aiohttp.access", "zeep", "onvif", "aioice", "aiortc", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
