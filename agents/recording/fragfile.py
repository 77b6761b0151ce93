"""One segment file written fragment by fragment: the header once, then each fragment with one `writev`.

Blocking (the native session calls it in the default executor, once per fragment). A fragment reaches the
kernel as one write when it is complete, so a kill -9 loses at most the fragment being gathered; `fdatasync`
once per `fragment_s` (and `fsync` at close) bounds what a power loss takes the same way.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

_IOV_MAX = 512


class FragmentFile:
    """A segment file open for appending whole fragments."""

    def __init__(self, path: Path, header: bytes, *, fragment_s: float, fsync: bool = True) -> None:
        self.path = path
        self._fsync = fsync
        self._fragment_s = fragment_s
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        self._size = 0
        self._synced_at = time.monotonic()
        try:
            self.write([header])
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    @property
    def size(self) -> int:
        """Bytes written so far (whole fragments only)."""
        return self._size

    def write(self, parts: Sequence[bytes]) -> None:
        """Append one fragment (its boxes and samples, in order) and sync it once per `fragment_s`."""
        if self._fd < 0:
            raise OSError("the segment file is closed")
        if len(parts) > _IOV_MAX:
            parts = [b"".join(parts)]
        total = sum(len(p) for p in parts)
        written = os.writev(self._fd, parts)
        if written < total:  # a short write (a signal, a nearly full disk): write the rest byte-exactly
            rest = b"".join(parts)[written:]
            while rest:
                count = os.write(self._fd, rest)
                rest = rest[count:]
        self._size += total
        if self._fsync and time.monotonic() - self._synced_at >= self._fragment_s:
            os.fdatasync(self._fd)
            self._synced_at = time.monotonic()

    def close(self) -> int:
        """fsync and close; the file's size. Safe to call twice."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        return self.path.stat().st_size

    def abandon(self) -> None:
        """Close without caring for errors (after a failed write); the caller repairs the file."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)
