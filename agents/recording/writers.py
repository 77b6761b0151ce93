"""A few threads that write the segment files, so that the event loop hands over each fragment without waiting.

Awaiting an executor future per fragment costs a future, a wake-up of a worker and a wake-up of the loop per
fragment per camera; here the loop only puts the fragment on a queue (`FileWriter.write`), and hears back only
when it asks (`barrier`: at the end of a segment, or when too many fragments wait). A file is always written by
the same thread, so its fragments stay in order. A failed write is kept (`FileWriter.error`) and the file's
later writes are skipped; the session sees the error at its next fragment or barrier and ends as before.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import queue
import threading
from collections.abc import Callable

from agents.recording.fragfile import FragmentFile

MAX_QUEUED = 16
"""Fragments of one file that may wait for the disk; above this the session waits for them (backpressure)."""
_Job = Callable[[], None] | None


class DiskWriters:
    """`threads` writer threads; `stop()` lets them finish what they hold and waits for them."""

    def __init__(self, threads: int = 4) -> None:
        self._queues: list[queue.SimpleQueue[_Job]] = [queue.SimpleQueue() for _ in range(threads)]
        self._threads = [
            threading.Thread(target=self._work, args=(q,), name=f"segment-writer-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        self._next = itertools.count()
        for thread in self._threads:
            thread.start()

    def open(self, file: FragmentFile) -> FileWriter:
        """A writer for `file`, bound to one of the threads."""
        return FileWriter(file, self._queues[next(self._next) % len(self._queues)])

    def stop(self) -> None:
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            thread.join()

    @staticmethod
    def _work(jobs: queue.SimpleQueue[_Job]) -> None:
        while (job := jobs.get()) is not None:
            job()


class FileWriter:
    """One segment file's fragments on its writer thread."""

    def __init__(self, file: FragmentFile, jobs: queue.SimpleQueue[_Job]) -> None:
        self.file = file
        self._jobs = jobs
        self.error: BaseException | None = None
        """The first failed write (set by the writer thread)."""
        self._queued = 0  # written by the loop only
        self._done = 0  # written by the writer thread only

    @property
    def waiting(self) -> int:
        return self._queued - self._done

    def write(self, parts: list[bytes]) -> None:
        """Queue one fragment."""
        self._queued += 1
        self._jobs.put(lambda: self._write(parts))

    def _write(self, parts: list[bytes]) -> None:
        try:
            if self.error is None:
                self.file.write(parts)
        except BaseException as exc:  # kept for the session, which ends on it
            self.error = exc
        finally:
            self._done += 1

    async def barrier(self, then: Callable[[], object] | None = None) -> object:
        """Wait until every queued fragment is written; run `then` on the writer thread after them."""
        future: concurrent.futures.Future[object] = concurrent.futures.Future()

        def job() -> None:
            waited = future.set_running_or_notify_cancel()  # False: nobody waits any more; `then` still runs
            try:
                result = then() if then is not None else None
            except BaseException as exc:
                if waited:
                    future.set_exception(exc)
            else:
                if waited:
                    future.set_result(result)

        self._jobs.put(job)
        return await asyncio.wrap_future(future)
