"""Bookings benchmark: create-with-conflict-check and availability search against a served controller.

    .venv/bin/python -m benchmarks.bookings [--backends sqlite,postgresql] [--rate 200] [--seconds 10] [--quick]

Per backend: a fresh database (SQLite file, or a PostgreSQL schema of its own at 127.0.0.1:5432/test, dropped at
the end) seeded with 1,000 rooms at 500 schools and 20,000 existing one-hour bookings (20 per room over the next
four weeks' working hours); then `python -m controller serve` on a free loopback port, and this process as the
load: an open loop of POST /api/bookings at `--rate` per second (a random room, weekday and hour: some of them
clash and get 409, which is a full conflict check too) with at most 64 in flight, and alongside it an
availability search (30 random rooms, the next week, 07:00-17:00) every half second. Latency is measured from
send to answer, on one aiohttp session with keep-alive. Prints the conditions and figures, then a JSON last
line: per backend `bookings_per_s` (answered create requests per second), `p50_ms`, `p99_ms` (create),
`availability_ms` (p50 under the load), with `availability_p99_ms`, `created`, `conflicts`, `errors` and
`server_cpu_ms_per_create` (the controller process's CPU time over the load divided by the creates answered),
`load_cpu_ms_per_create` (this process's), and the machine's state over the load: `machine_busy_cores` (average
busy cores) and `other_busy_cores` (of those, neither the controller nor this process: the database server and
whatever else the machine runs), and `load_average_1m` (the machine's one-minute load average as the load
starts), since a shared machine's figures mean little without them. `slow_creates` counts the creates slower than
50 ms and `slow_creates_span_s` is how far apart in the load the first and last of them were sent (a short span:
one stall of the controller, the database or the machine; a long one: slowness throughout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
ROOMS = 1000
BOOKINGS = 20000
PASSWORD = "bench-password-long-enough"
MAX_IN_FLIGHT = 64
SLOW_MS = 50.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _weekdays(first: date, count: int) -> list[date]:
    days: list[date] = []
    day = first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


async def seed(url: str, schema: str | None, first_day: date) -> list[int]:
    """Migrate, then 500 schools with 2 rooms each, an admin, and 20 bookings per room; returns the room ids."""
    from controller import accounts
    from controller.bookings.models import (
        BandwidthClass,
        Booking,
        BookingMode,
        BookingRoom,
        Occurrence,
        Room,
        RoomOccupancy,
    )
    from controller.db.engine import create_engine, session_factory
    from controller.db.migrate import upgrade
    from controller.db.models import Role, UnitKind
    from controller.security.passwords import Passwords
    from controller.units import create_unit

    engine = create_engine(url, schema)
    now = datetime.now(UTC)
    try:
        await upgrade(engine)
        db = session_factory(engine)
        async with db.begin() as session:
            department = await create_unit(session, name="Sở", kind=UnitKind.DEPARTMENT, now=now)
            admin = await accounts.create_user(
                session, Passwords(), username="bench", password=PASSWORD, role=Role.ADMIN, now=now
            )
            rooms: list[Room] = []
            for index in range(ROOMS // 2):
                school = await create_unit(
                    session, name=f"Trường {index}", kind=UnitKind.SCHOOL, parent_id=department.id, now=now
                )
                for number in (1, 2):
                    rooms.append(
                        Room(
                            unit_id=school.id,
                            name=f"Phòng {number}",
                            capacity=40,
                            equipment=["camera"],
                            bandwidth_class=BandwidthClass.MEDIUM,
                            booking_window_days=90,
                            max_duration_minutes=240,
                            active=True,
                            created_at=now,
                            updated_at=now,
                        )
                    )
            session.add_all(rooms)
            await session.flush()
            room_ids = [room.id for room in rooms]
            admin_id = admin.id
        days = _weekdays(first_day, 20)
        hours = list(range(7, 17))
        rng = random.Random(1)
        per_room = BOOKINGS // ROOMS
        for chunk in range(0, ROOMS, 100):
            async with db.begin() as session:
                bookings: list[tuple[Booking, int, datetime]] = []
                for room_id in room_ids[chunk : chunk + 100]:
                    for slot in rng.sample([(d, h) for d in days for h in hours], per_room):
                        start = datetime.combine(slot[0], dtime(slot[1]), tzinfo=HCM).astimezone(UTC)
                        booking = Booking(
                            title="Giờ học",
                            agenda="",
                            mode=BookingMode.CLASS,
                            organizer_id=admin_id,
                            host_room_id=room_id,
                            starts_at=start,
                            ends_at=start + timedelta(hours=1),
                            time_zone=HCM.key,
                            rrule=None,
                            exdates=[],
                            attendees=None,
                            created_at=now,
                            updated_at=now,
                        )
                        bookings.append((booking, room_id, start))
                session.add_all(b for b, _, _ in bookings)
                await session.flush()
                occurrences = [
                    Occurrence(
                        booking_id=b.id,
                        recurrence_id=s,
                        starts_at=s,
                        ends_at=s + timedelta(hours=1),
                        cancelled=False,
                        detached=False,
                    )
                    for b, _, s in bookings
                ]
                session.add_all(occurrences)
                session.add_all(BookingRoom(booking_id=b.id, room_id=r, is_host=True) for b, r, _ in bookings)
                await session.flush()
                session.add_all(
                    RoomOccupancy(
                        room_id=r, occurrence_id=o.id, booking_id=b.id, starts_at=o.starts_at, ends_at=o.ends_at
                    )
                    for (b, r, _), o in zip(bookings, occurrences, strict=True)
                )
        return room_ids
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def served(env: dict[str, str], port: int) -> AsyncIterator[tuple[str, int]]:
    """`python -m controller serve` in its own process until the block ends."""
    process = subprocess.Popen(  # noqa: ASYNC220 (started once; waited for below without blocking the loop)
        [PYTHON, "-m", "controller", "serve"], cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{base}/healthz") as response:
                        if response.status == 200:
                            break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the controller did not start")
                await asyncio.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / tick, sum(fields) / tick


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


async def load(base: str, room_ids: list[int], first_day: date, rate: float, seconds: float) -> dict[str, Any]:
    rng = random.Random(2)
    days = _weekdays(first_day, 20)
    monday = first_day + timedelta(days=(7 - first_day.weekday()) % 7)
    latencies: list[float] = []
    slow: list[float] = []
    """When (seconds into the load) each create slower than SLOW_MS was sent: one stall, or spread out?"""
    load_began = time.perf_counter()  # set again when the counted load starts
    availability: list[float] = []
    counts = {"created": 0, "conflicts": 0, "errors": 0}
    failures: dict[str, int] = {}
    async with aiohttp.ClientSession(
        headers={"Origin": base},
        connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT),
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # the session cookie comes from an IP address
    ) as http:
        async with http.post(
            f"{base}/signin", data={"username": "bench", "password": PASSWORD, "next": "/"}, allow_redirects=False
        ) as response:
            assert response.status == 303, await response.text()
        async with http.get(f"{base}/api/session") as response:
            token = (await response.json())["csrf_token"]
        headers = {"X-CSRF-Token": token}
        in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

        async def book(index: int) -> None:
            day = rng.choice(days)
            start = datetime.combine(day, dtime(rng.randrange(7, 17), rng.choice((0, 30))), tzinfo=HCM)
            body = {
                "title": f"Bench {index}",
                "mode": "meeting",
                "host_room": rng.choice(room_ids),
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=rng.choice((30, 45, 60)))).isoformat(),
            }
            async with in_flight:
                began = time.perf_counter()
                async with http.post(f"{base}/api/bookings", json=body, headers=headers) as response:
                    await response.read()
                    latencies.append((time.perf_counter() - began) * 1000)
                    if latencies[-1] > SLOW_MS:
                        slow.append(began - load_began)
                    key = {201: "created", 409: "conflicts"}.get(response.status, "errors")
                    counts[key] += 1
                    if key == "errors":
                        failures[str(response.status)] = failures.get(str(response.status), 0) + 1

        async def search() -> None:
            rooms = ",".join(str(r) for r in rng.sample(room_ids, 30))
            began = time.perf_counter()
            params = {"rooms": rooms, "week": monday.isoformat(), "day_start": "07:00", "day_end": "17:00"}
            async with http.get(f"{base}/api/availability", params=params) as response:
                await response.read()
                assert response.status == 200
            availability.append((time.perf_counter() - began) * 1000)

        async def searches(until: float) -> None:
            while time.monotonic() < until:
                await search()
                await asyncio.sleep(0.5)

        async def creates(count: int, started: float) -> None:
            tasks = []
            for index in range(count):
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(book(index)))
            await asyncio.gather(*tasks)

        for _ in range(20):  # warm-up: connections, caches
            await search()
        # and the create path: one second of the load, not counted (a freshly started controller opens its
        # database connections and prepares its statements on each at the first burst, tens of ms apiece)
        await creates(int(rate), time.monotonic())
        availability.clear()
        latencies.clear()
        slow.clear()
        counts.update(created=0, conflicts=0, errors=0)
        failures.clear()
        # This process's own full collections (its heap still holds the seeding's modules and caches) would
        # stop its loop for 30-45 ms and show as the controller's latency: out of the way over the load.
        gc.collect()
        gc.freeze()
        started = time.monotonic()
        load_began = time.perf_counter()
        total = int(rate * seconds)
        searcher = asyncio.create_task(searches(started + seconds))
        await creates(total, started)
        elapsed = time.monotonic() - started
        await searcher
        gc.unfreeze()
        idle = []
        for _ in range(20):
            began = time.perf_counter()
            await search()
            idle.append((time.perf_counter() - began) * 1000)
    answered = counts["created"] + counts["conflicts"] + counts["errors"]
    return {
        "bookings_per_s": round(answered / elapsed, 1),
        "p50_ms": round(_percentile(latencies, 0.5), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
        "availability_ms": round(_percentile(availability, 0.5), 2),
        "availability_p99_ms": round(_percentile(availability, 0.99), 2),
        "availability_idle_ms": round(statistics.median(idle), 2),
        "offered_per_s": rate,
        "slow_creates": len(slow),
        "slow_creates_span_s": round(max(slow) - min(slow), 3) if slow else 0.0,
        **counts,
        "error_statuses": failures,
    }


async def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    first_day = datetime.now(HCM).date() + timedelta(days=1)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="ketnoi-bench-") as tmp:
        env = {
            "KETNOI_CONTROLLER_HOST": "127.0.0.1",
            "KETNOI_CONTROLLER_PORT": str(port),
            "KETNOI_CONTROLLER_DATA_DIR": tmp,
            "KETNOI_CONTROLLER_COOKIE_SECURE": "false",
            "KETNOI_CONTROLLER_LOG_LEVEL": "WARNING",
        }
        schema = None
        url = f"sqlite+aiosqlite:///{tmp}/controller.db"
        if backend == "postgresql":
            schema = f"bench_{secrets.token_hex(4)}"
            url = POSTGRES_URL
            env["KETNOI_CONTROLLER_DATABASE_SCHEMA"] = schema
        env["KETNOI_CONTROLLER_DATABASE_URL"] = url
        async with _schema(schema):
            began = time.monotonic()
            room_ids = await seed(url, schema, first_day)
            seeded_s = time.monotonic() - began
            async with served(env, port) as (base, pid):
                load_average = os.getloadavg()[0]
                cpu_before = _cpu_seconds(pid)
                own_before = time.process_time()
                machine_before = _machine_cpu()
                figures = await load(base, room_ids, first_day, args.rate, args.seconds)
                answered = figures["created"] + figures["conflicts"] + figures["errors"]
                server_s = _cpu_seconds(pid) - cpu_before
                own_s = time.process_time() - own_before
                busy, total = (after - before for after, before in zip(_machine_cpu(), machine_before, strict=True))
                cpus = os.cpu_count() or 1
                figures["server_cpu_ms_per_create"] = round(server_s * 1000 / answered, 2)
                figures["load_cpu_ms_per_create"] = round(own_s * 1000 / answered, 2)
                # Conditions on a shared machine: how many cores were busy on average, and how many of them
                # were neither the controller nor this load (the database server and everybody else).
                figures["machine_busy_cores"] = round(busy / total * cpus, 2)
                figures["other_busy_cores"] = round((busy - server_s - own_s) / total * cpus, 2)
                figures["load_average_1m"] = round(load_average, 2)
        figures["seed_s"] = round(seeded_s, 1)
        return figures


@contextlib.asynccontextmanager
async def _schema(schema: str | None) -> AsyncIterator[None]:
    if schema is None:
        yield
        return
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(POSTGRES_URL)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bookings", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--rate", type=float, default=200.0, help="offered create requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the load runs")
    parser.add_argument("--quick", action="store_true", help="a 3-second load (a first figure)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 3.0
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    cpu = os.cpu_count()
    print(f"conditions: {ROOMS} rooms at {ROOMS // 2} schools, {BOOKINGS} existing one-hour bookings")
    print(f"  {platform.python_implementation()} {platform.python_version()}, {cpu} CPU(s), {platform.machine()}")
    print(f"  offered load {args.rate:g} creates/s for {args.seconds:g} s (open loop, <= {MAX_IN_FLIGHT} in flight),")
    print("  plus an availability search (30 rooms, one week) every 0.5 s; controller and load on loopback")
    summary: dict[str, Any] = {}
    for backend in backends:
        figures = asyncio.run(run_backend(backend, args))
        summary[backend] = figures
        print(
            f"{backend}: {figures['bookings_per_s']} creates/s answered ({figures['created']} created, "
            f"{figures['conflicts']} conflicts, {figures['errors']} errors), p50 {figures['p50_ms']} ms, "
            f"p99 {figures['p99_ms']} ms; availability p50 {figures['availability_ms']} ms "
            f"(p99 {figures['availability_p99_ms']}, idle {figures['availability_idle_ms']} ms); "
            f"seeded in {figures['seed_s']} s; controller CPU {figures['server_cpu_ms_per_create']} ms per create "
            f"(availability searches included), load CPU {figures['load_cpu_ms_per_create']} ms per create; "
            f"machine: {figures['machine_busy_cores']} of {cpu} cores busy, "
            f"{figures['other_busy_cores']} by neither the controller nor the load (database, other work); "
            f"load average {figures['load_average_1m']} as the load started"
        )
    sys.stdout.flush()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
