"""One writer thread on a SQLite file: a whole write transaction is one call from the event loop.

Through SQLAlchemy and aiosqlite every statement of a transaction is a hop to a worker thread and back through
the event loop, and SQLite's single write lock is held across all those hops: with the loop busy, about 7 ms
per booking, which capped creates near 145/s. Here a job (a plain function of a stdlib `sqlite3` connection)
runs in this thread between BEGIN IMMEDIATE and COMMIT, so the lock is held only while SQLite works, and the
loop pays one hop per job.

Group commit: jobs that queue up while a transaction runs go together into the next one, each under its own
SAVEPOINT, so one refused job (an exception) undoes only its own writes. Results are handed back only after the
COMMIT, all of a batch in one call into the loop.

With `read_only=True` the same thread is a reader: jobs run one by one outside any transaction (each statement
reads the latest commit), on a connection that refuses writes (query_only): one hop for a lookup that
SQLAlchemy makes in several.

Other writers on the same file (the SQLAlchemy engine of this process, other processes) serialise with this
one through SQLite's write lock and busy_timeout. Writers of this process can avoid the busy-timeout polling
(which sleeps in steps of 1 to 100 ms) with `hold()`: the thread finishes its transaction and waits, outside
any transaction, until the holder is done.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BATCH = 64
"""Jobs in one transaction at most."""
BUSY_TIMEOUT_MS = 5000


@dataclass
class _Job(Generic[T]):
    work: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]


@dataclass
class _Hold:
    """A pause of the thread, outside any transaction, for a writer of this process."""

    held: asyncio.Future[None]
    released: threading.Event = field(default_factory=threading.Event)


class _Stop:
    pass


_Item = _Job[Any] | _Hold | _Stop


def connect(path: str, read_only: bool = False) -> sqlite3.Connection:
    """A connection as the engine's (controller.db.engine): foreign keys, WAL, synchronous=NORMAL, busy_timeout;
    transactions begun explicitly (isolation_level None)."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    if read_only:
        connection.execute("PRAGMA query_only=ON")
    return connection


def for_engine(engine: AsyncEngine, *, read_only: bool = False) -> SqliteWriter | None:
    """A writer (or a reader) on the engine's SQLite file; None for another backend or an in-memory database."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return SqliteWriter(url.database, read_only=read_only)


class SqliteWriter:
    """Owned by the application: `start()` once the database is migrated, `close()` at shutdown."""

    def __init__(self, path: str, *, read_only: bool = False) -> None:
        self._path = path
        self._read_only = read_only
        self._queue: SimpleQueue[_Item] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.transactions = 0
        """Transactions committed."""
        self.jobs = 0
        """Jobs run, whatever their outcome."""

    async def start(self) -> None:
        """Open the connection in the writer thread (errors raise here, not at the first job)."""
        self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = self._loop.create_future()
        name = "sqlite-reader" if self._read_only else "sqlite-writer"
        self._thread = threading.Thread(target=self._main, args=(opened,), name=name, daemon=True)
        self._thread.start()
        await opened

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` in a write transaction (its own savepoint when batched); its result after the
        COMMIT, or its exception (its writes undone). Cancelling the caller does not undo a job already queued."""
        return await self.submit(work)

    def submit(self, work: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue `work` now (in the order of the calls); the future is `run`'s outcome."""
        if self._loop is None or self._closed:
            raise RuntimeError("the SQLite writer is not running")
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(_Job(work, future))
        return future

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """While the block runs the thread is outside any transaction and starts none."""
        if self._loop is None or self._closed:
            yield
            return
        hold = _Hold(self._loop.create_future())
        self._queue.put(hold)
        try:
            await hold.held
            yield
        finally:
            hold.released.set()

    async def close(self) -> None:
        """Finish the queued jobs, then close the connection and end the thread."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._queue.put(_Stop())
        await asyncio.to_thread(self._thread.join)

    # ----- the thread -----

    def _main(self, opened: asyncio.Future[None]) -> None:
        assert self._loop is not None
        try:
            connection = connect(self._path, self._read_only)
        except sqlite3.Error as exc:
            self._loop.call_soon_threadsafe(_fail, opened, exc)
            return
        self._loop.call_soon_threadsafe(_succeed, opened, None)
        carried: _Item | None = None
        try:
            while True:
                item = carried if carried is not None else self._queue.get()
                carried = None
                if isinstance(item, _Stop):
                    return
                if isinstance(item, _Hold):
                    self._loop.call_soon_threadsafe(_succeed, item.held, None)
                    item.released.wait()
                    continue
                batch: list[_Job[Any]] = [item]
                while len(batch) < MAX_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except Empty:
                        break
                    if not isinstance(more, _Job):
                        carried = more
                        break
                    batch.append(more)
                self._loop.call_soon_threadsafe(_deliver, self._guarded(connection, batch))
        finally:
            connection.close()

    def _guarded(self, connection: sqlite3.Connection, batch: list[_Job[Any]]) -> list[tuple[_Job[Any], Any, bool]]:
        """The batch's outcomes; an error of the writer's own statements (SAVEPOINT, RELEASE, ROLLBACK) fails the
        batch instead of ending the thread, whose callers (and holders) would otherwise wait for ever."""
        try:
            return self._transaction(connection, batch)
        except sqlite3.Error as exc:
            logger.exception("sqlite writer: %s jobs failed", len(batch))
            if connection.in_transaction:
                try:
                    connection.execute("ROLLBACK")
                except sqlite3.Error:
                    logger.exception("sqlite writer: rollback failed")
            return [(job, exc, False) for job in batch]

    def _transaction(self, connection: sqlite3.Connection, batch: list[_Job[Any]]) -> list[tuple[_Job[Any], Any, bool]]:
        """Outcomes (job, result or exception, ok) of one transaction over the batch."""
        self.jobs += len(batch)
        if self._read_only:
            return [_outcome(job, connection) for job in batch]
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            logger.warning("sqlite writer: could not begin (%s): %s jobs refused", exc, len(batch))
            return [(job, exc, False) for job in batch]
        outcomes: list[tuple[_Job[Any], Any, bool]] = []
        alone = len(batch) == 1
        for job in batch:
            if not alone:
                connection.execute("SAVEPOINT job")
            try:
                result = job.work(connection)
            except Exception as exc:  # the job's own refusal (or error): undo its writes only
                if not connection.in_transaction:  # SQLite rolled back the whole transaction (I/O error, full)
                    logger.warning("sqlite writer: transaction lost (%s): %s jobs undone", exc, len(batch))
                    return [(other, exc, False) for other in batch]
                connection.execute("ROLLBACK" if alone else "ROLLBACK TO job")
                if alone:
                    return [(job, exc, False)]
                connection.execute("RELEASE job")
                outcomes.append((job, exc, False))
                continue
            if not alone:
                connection.execute("RELEASE job")
            outcomes.append((job, result, True))
        try:
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            logger.warning("sqlite writer: commit failed (%s): %s jobs undone", exc, len(batch))
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            return [(job, exc if ok else result, False) for job, result, ok in outcomes]
        self.transactions += 1
        return outcomes


def _outcome(job: _Job[Any], connection: sqlite3.Connection) -> tuple[_Job[Any], Any, bool]:
    try:
        return job, job.work(connection), True
    except Exception as exc:  # handed to the caller
        return job, exc, False


def _deliver(outcomes: list[tuple[_Job[Any], Any, bool]]) -> None:
    for job, value, ok in outcomes:
        (_succeed if ok else _fail)(job.future, value)


def _succeed(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
