"""Free space on the recordings volume, from statvfs or from whatever a test injects."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DiskUsage:
    """A volume's size and the bytes an unprivileged writer can still use (statvfs f_bavail, not f_bfree)."""

    total_bytes: int
    free_bytes: int


UsageSource = Callable[[Path], DiskUsage]
"""Blocking (statvfs can hang on a network volume): the retention code calls it in a worker thread."""


def statvfs_usage(path: Path) -> DiskUsage:
    st = os.statvfs(path)
    return DiskUsage(total_bytes=st.f_blocks * st.f_frsize, free_bytes=st.f_bavail * st.f_frsize)
