"""Segment files are found from their index row, never from a path in a request, and only inside the root.

`resolve_segment` refuses a stored path that is absolute, climbs out (`..`), passes through a symbolic link at
any level, or is not a regular file: an index row tampered with, or a link planted in the recordings volume,
cannot make the agent serve a file from elsewhere.
"""

from __future__ import annotations

import stat
from pathlib import Path, PurePosixPath


class PathRefused(Exception):
    """The stored path does not lead to a regular file inside the recordings root."""


def resolve_segment(root: Path, relative: str) -> Path:
    """The file of a segment row (blocking: it stats each level)."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or not pure.parts or any(part in ("", ".", "..") for part in pure.parts):
        raise PathRefused("the stored path is not a plain relative path")
    base = root.resolve()
    current = base
    for part in pure.parts:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except FileNotFoundError:
            raise PathRefused("the file is gone") from None
        if stat.S_ISLNK(mode):
            raise PathRefused("the path goes through a symbolic link")
    if not stat.S_ISREG(current.lstat().st_mode):
        raise PathRefused("not a regular file")
    if not current.resolve().is_relative_to(base):
        raise PathRefused("outside the recordings root")
    return current
