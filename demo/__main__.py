"""`python -m demo`: a small province on one machine, on loopback, with SQLite.

Starts the controller, simulated cameras and one edge agent as separate processes, sets up a Department, a
district office and a kindergarten, enrols the agent with a one-time code, waits until the technician's view
shows the cameras, and prints the URLs and the demo logins (random passwords, printed once). Each run starts
from a fresh state under --workdir. With --check it stops once everything is up (used by the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from demo.api import Api, ApiRefused
from demo.live import LiveSeedFailed, seed_live
from demo.media import start_media_nodes
from demo.meetings import seed_meeting
from demo.processes import Child, ChildFailed, run_once

SETTLED_STATES = {"ready", "auth_failed", "unreachable", "pending_approval"}


@dataclass(frozen=True)
class Plan:
    workdir: Path
    port: int
    agent_port: int
    cameras: int
    first_host: str
    http_port: int
    rtsp_port: int
    check: bool
    timeout: float
    media_nodes: int = 1
    media_port: int = 8600

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def camera_host(self, index: int) -> str:
        return str(ipaddress.IPv4Address(self.first_host) + index)

    @property
    def camera_networks(self) -> list[str]:
        """The school's camera networks: every camera but the last, which shows the approval flow."""
        first = ipaddress.IPv4Address(self.first_host)
        last_inside, outside = first + self.cameras - 2, first + self.cameras - 1
        for prefix in range(32, 0, -1):  # one network when one fits (127.0.1.0/29 for the default 8 cameras)
            net = ipaddress.IPv4Network(f"{first}/{prefix}", strict=False)
            if last_inside in net:
                if outside not in net:
                    return [str(net)]
                break
        return [str(net) for net in ipaddress.summarize_address_range(first, last_inside)]


def parse_args(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--workdir", type=Path, default=Path("var/demo"), help="state of this run (wiped first)")
    parser.add_argument("--port", type=int, default=8000, help="controller port on 127.0.0.1 (default 8000)")
    parser.add_argument("--agent-port", type=int, default=8470, help="agent /healthz port (default 8470)")
    parser.add_argument("--cameras", type=int, default=8, help="simulated cameras (default 8)")
    parser.add_argument("--first-host", default="127.0.1.1", help="address of the first camera (default 127.0.1.1)")
    parser.add_argument("--http-port", type=int, default=8080, help="cameras' ONVIF port (default 8080)")
    parser.add_argument("--rtsp-port", type=int, default=8554, help="cameras' RTSP port (default 8554)")
    parser.add_argument("--check", action="store_true", help="stop once everything is up; exit 0 if it all works")
    parser.add_argument("--timeout", type=float, default=120, help="seconds allowed for start-up (default 120)")
    parser.add_argument("--media-nodes", type=int, default=1, help="media nodes to start (default 1)")
    parser.add_argument("--media-port", type=int, default=8600, help="first media node's port (default 8600)")
    a = parser.parse_args(argv)
    if not 2 <= a.cameras <= 200:
        parser.error("--cameras must be between 2 and 200")
    if not 0 <= a.media_nodes <= 8:
        parser.error("--media-nodes must be between 0 and 8")
    try:
        if not ipaddress.IPv4Address(a.first_host).is_loopback:
            parser.error("--first-host must be a loopback address (127.x.y.z): the demo stays on this machine")
    except ValueError:
        parser.error(f"--first-host {a.first_host!r} is not an IPv4 address")
    return Plan(a.workdir, a.port, a.agent_port, a.cameras, a.first_host, a.http_port, a.rtsp_port, a.check, a.timeout,
                a.media_nodes, a.media_port)  # fmt: skip


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


async def cli_json(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    out = await run_once(args, env=env)
    value = json.loads(out.strip().splitlines()[-1])
    if not isinstance(value, dict):
        raise ChildFailed(f"`python -m {' '.join(args[:2])}` printed no JSON object")
    return value


async def wait_http(url: str, child: Child, timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            if child.exited() is not None:
                raise ChildFailed(f"{child.name} exited (code {child.exited()}); see {child.log_path}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise ChildFailed(f"{child.name} did not answer {url} within {timeout:.0f} s; see {child.log_path}")


async def technician_view(plan: Plan, username: str, password: str, unit_id: int) -> list[dict[str, Any]]:
    """Sign in as the technician and wait until the school's agent is online and every camera has settled."""
    deadline = time.monotonic() + plan.timeout
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=10)) as http:
        async with http.post(
            f"{plan.url}/signin",
            data={"username": username, "password": password},
            headers={"Origin": plan.url},
            allow_redirects=False,
        ) as response:
            if response.status not in (302, 303):
                raise ChildFailed(f"signing in as {username} failed (HTTP {response.status})")
        while time.monotonic() < deadline:
            async with http.get(f"{plan.url}/api/units/{unit_id}/agents") as response:
                agents = (await response.json())["agents"] if response.status == 200 else []
            online = [a for a in agents if a.get("online")]
            if online:
                async with http.get(f"{plan.url}/api/agents/{online[0]['id']}/cameras") as response:
                    cameras: list[dict[str, Any]] = (await response.json())["cameras"]
                if len(cameras) >= plan.cameras and all(c["state"] in SETTLED_STATES for c in cameras):
                    return cameras
            await asyncio.sleep(0.5)
    raise ChildFailed(f"the technician did not see {plan.cameras} settled cameras within {plan.timeout:.0f} s")


MORE_SCHOOLS = (
    ("Trường THCS Trương Hán Siêu", "lower_secondary", "hoa_lu"),
    ("Trường Mầm non Sơn Ca", "kindergarten", "yen_khanh"),
    ("Trường Tiểu học Yên Khánh", "primary", "yen_khanh"),
    ("Trường THPT Yên Khánh A", "upper_secondary", "yen_khanh"),
)
ROLE_USERS = (
    ("datlich", "department_booker", "cán bộ đặt lịch / department booker"),
    ("nhatruong", "school_staff", "cán bộ trường / school staff"),
    ("giaovien", "teacher", "giáo viên / teacher"),
    ("phuhuynh", "parent", "phụ huynh / parent"),
)


async def seed_bookings(plan: Plan, admin_password: str, kindergarten_id: int) -> dict[str, str]:
    """A dual-use room at every unit, a user of each booking role and a parent, and a few bookings this week.

    Everything goes through the JSON API as the administrator; returns the new logins (random passwords)."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=30)) as http:
        api = await Api.sign_in(http, plan.url, admin_password)
        units = (await api.call("GET", "/api/units"))["units"]
        rooms: dict[str, int] = {}
        for unit in units:
            room_name = "Hội trường trực tuyến" if unit["kind"] != "school" else "Phòng đa năng"
            room = await api.call(
                "POST", f"/api/units/{unit['id']}/rooms",
                {"name": room_name, "capacity": 60 if unit["kind"] != "school" else 35,
                 "equipment": ["camera", "micro", "tv"], "bandwidth_class": "medium"},
            )  # fmt: skip
            rooms[unit["name"]] = int(room["id"])
        department = next(u for u in units if u["kind"] == "department")
        logins: dict[str, str] = {}
        ids: dict[str, int] = {}
        for username, role, label in ROLE_USERS:
            unit_id = department["id"] if role == "department_booker" else kindergarten_id
            made = await api.call("POST", "/api/users", {"username": username, "role": role, "unit_id": unit_id})
            logins[f"{username} ({label})"] = f"{username} / {made['password']}"
            ids[username] = int(made["id"])
        klass = await api.call("POST", f"/api/units/{kindergarten_id}/classes", {"school_year": "2025-2026",
                                                                                "name": "Lá 1"})  # fmt: skip
        child = await api.call("POST", f"/api/units/{kindergarten_id}/children",
                               {"code": "HS001", "full_name": "Nguyễn Minh An", "date_of_birth": "2021-03-14",
                                "class_id": klass["id"]})  # fmt: skip
        await api.call("POST", f"/api/children/{child['id']}/guardians",
                       {"user_id": ids["phuhuynh"], "relationship": "mother"})  # fmt: skip
        await api.call("POST", f"/api/classes/{klass['id']}/staff", {"user_id": ids["giaovien"]})

        zone = ZoneInfo("Asia/Ho_Chi_Minh")
        tomorrow = datetime.now(zone).date() + timedelta(days=1)

        def at(day: int, hour: int, minute: int = 0) -> str:
            return datetime.combine(tomorrow + timedelta(days=day), dt_time(hour, minute), zone).isoformat()

        names = list(rooms)
        kindergarten = next(u["name"] for u in units if u["id"] == kindergarten_id)
        host = rooms[department["name"]]
        bookings = [
            {"title": "Họp giao ban toàn ngành", "mode": "meeting", "host_room": host,
             "participant_rooms": [rooms[n] for n in names if rooms[n] != host], "start": at(0, 8), "end": at(0, 10),
             "agenda": "Triển khai nhiệm vụ tuần"},
            {"title": "Lớp tiếng Anh trực tuyến", "mode": "class", "host_room": rooms[names[-1]],
             "participant_rooms": [rooms[names[-2]]], "start": at(0, 14), "end": at(0, 15),
             "recurrence": {"rule": "FREQ=WEEKLY;COUNT=8"}},
            {"title": "Dự giờ lớp Lá 1", "mode": "observation", "host_room": rooms[kindergarten],
             "participant_rooms": [host], "start": at(1, 9), "end": at(1, 9, 45)},
        ]  # fmt: skip
        for booking in bookings:
            await api.call("POST", "/api/bookings", booking)
    return logins


def print_summary(plan: Plan, logins: dict[str, str], cam_password: str, cameras: list[dict[str, Any]]) -> None:
    first = next(c for c in cameras if c["address"] == plan.camera_host(0))
    first_camera = str(first["endpoint_ref"]).removeprefix("urn:uuid:")
    now = datetime.now(UTC).replace(microsecond=0)
    since, until = ((now + timedelta(hours=h)).isoformat().replace("+00:00", "Z") for h in (-1, 1))
    by_state: dict[str, int] = {}
    for camera in cameras:
        by_state[camera["state"]] = by_state.get(camera["state"], 0) + 1
    lines = [
        "",
        "Kết Nối — bản demo đang chạy / the demo is running",
        f"  Bộ điều khiển / controller:   {plan.url}/",
        f"  Tác tử / agent health:        http://127.0.0.1:{plan.agent_port}/healthz",
        f"  Camera mô phỏng / cameras:    {plan.cameras} on {plan.camera_host(0)}..{plan.camera_host(plan.cameras - 1)}"
        f" (ONVIF :{plan.http_port}, RTSP :{plan.rtsp_port})",
        f"  Xem thử / try:                ffplay rtsp://admin:{cam_password}@{plan.camera_host(0)}:{plan.rtsp_port}/main",
        "",
        "Đăng nhập / sign in (mật khẩu ngẫu nhiên, chỉ in một lần / random passwords, shown once):",
    ]
    lines += [f"  {who:<46} {secret}" for who, secret in logins.items()]
    lines += [
        f"Đặt lịch / bookings: {plan.url}/my/sessions (a meeting across every unit's room, a weekly class, an"
        " observation, this week)",
        "",
        "Camera theo trạng thái / cameras by state: " + ", ".join(f"{k} {v}" for k, v in sorted(by_state.items())),
        f"  {plan.camera_host(plan.cameras - 1)} is outside the school's camera networks"
        f" ({', '.join(plan.camera_networks)}): it waits for a technician's approval on the school page.",
        f"  {plan.camera_host(2)} has the wrong password configured at the agent: auth_failed.",
        f"  {plan.camera_host(1)} has its clock six months off: still ready.",
        "",
        f"Ghi hình / recordings: {plan.workdir / 'agent' / 'recordings'} (the last 15 minutes of every ready camera)",
        f'  curl -H "Authorization: Bearer $(cat {plan.workdir / "agent" / "api-token"})" \\',
        f"    'http://127.0.0.1:{plan.agent_port}/api/cameras/{first_camera}/segments?start={since}&end={until}'",
        f"  Chỉ số / agent metrics: http://127.0.0.1:{plan.agent_port}/metrics",
        f"Nhật ký / logs: {plan.workdir / 'logs'}",
    ]
    print("\n".join(lines), flush=True)


async def run(plan: Plan) -> int:
    work = plan.workdir.resolve()
    await asyncio.to_thread(shutil.rmtree, work, True)
    logs = work / "logs"
    cam_password = secrets.token_urlsafe(12)
    write_private(work / "camera-password", cam_password + "\n")
    write_private(work / "wrong-password", "not-" + secrets.token_urlsafe(8) + "\n")

    controller_env = {
        "KETNOI_CONTROLLER_HOST": "127.0.0.1",
        "KETNOI_CONTROLLER_PORT": str(plan.port),
        "KETNOI_CONTROLLER_PUBLIC_URL": plan.url,
        "KETNOI_CONTROLLER_DATA_DIR": str(work / "controller"),
        "KETNOI_CONTROLLER_COOKIE_SECURE": "false",
        "KETNOI_CONTROLLER_STATUS_INTERVAL_S": "10",
    }
    await run_once(["controller", "migrate"], env=controller_env)
    department = await cli_json(
        ["controller", "create-unit", "--name", "Sở Giáo dục và Đào tạo", "--kind", "department", "--json"],
        controller_env,
    )
    district = await cli_json(
        [
            "controller",
            "create-unit",
            "--name",
            "Phòng GD&ĐT Hoa Lư",
            "--kind",
            "district",
            "--parent",
            str(department["id"]),
            "--json",
        ],
        controller_env,
    )
    school = await cli_json(
        [
            "controller",
            "create-unit",
            "--name",
            "Trường Mầm non Hoa Sen",
            "--kind",
            "school",
            "--level",
            "kindergarten",
            "--parent",
            str(district["id"]),
            "--camera-network",
            *plan.camera_networks,
            "--json",
        ],
        controller_env,
    )
    await cli_json(
        [
            "controller",
            "create-unit",
            "--name",
            "Trường Tiểu học Kim Đồng",
            "--kind",
            "school",
            "--level",
            "primary",
            "--parent",
            str(district["id"]),
            "--json",
        ],
        controller_env,
    )
    other_district = await cli_json(
        ["controller", "create-unit", "--name", "Phòng GD&ĐT Yên Khánh", "--kind", "district", "--parent",
         str(department["id"]), "--json"],
        controller_env,
    )  # fmt: skip
    for name, level, parent in MORE_SCHOOLS:
        unit = district if parent == "hoa_lu" else other_district
        await cli_json(
            ["controller", "create-unit", "--name", name, "--kind", "school", "--level", level, "--parent",
             str(unit["id"]), "--json"],
            controller_env,
        )  # fmt: skip
    admin = await cli_json(["controller", "create-admin", "--username", "admin", "--json"], controller_env)
    tech = await cli_json(
        [
            "controller",
            "create-admin",
            "--username",
            "kythuat",
            "--role",
            "district_technician",
            "--unit",
            str(district["id"]),
            "--display-name",
            "Kỹ thuật viên Hoa Lư",
            "--json",
        ],
        controller_env,
    )
    code = await cli_json(["controller", "enrolment-code", "--unit", str(school["id"]), "--json"], controller_env)

    children: list[Child] = []
    try:
        controller = Child("controller", ["controller", "serve"], logs=logs, env=controller_env)
        children.append(controller)
        await controller.start()
        await wait_http(f"{plan.url}/healthz", controller, plan.timeout)
        media_nodes = await start_media_nodes(
            plan.media_nodes, plan.media_port, plan.url, work / "controller" / "media-secret.key", logs, plan.timeout,
            wait_http,
        )  # fmt: skip
        children.extend(node.child for node in media_nodes)

        simulator = Child(
            "simulator",
            [
                "simulator",
                "--cameras",
                str(plan.cameras),
                "--first-host",
                plan.first_host,
                "--http-port",
                str(plan.http_port),
                "--rtsp-port",
                str(plan.rtsp_port),
                "--password-file",
                str(work / "camera-password"),
                "--cache-dir",
                str(Path("var/cache/simulator")),
                "--quirk",
                "1:clock_offset_s=15552000",
                "--json",
            ],
            logs=logs,
        )
        children.append(simulator)
        await simulator.start(capture_stdout=True)
        await simulator.json_lines_until("ready", plan.timeout)

        agent_config = work / "agent.toml"
        last = plan.camera_host(plan.cameras - 1)
        write_private(
            agent_config,
            f'state_dir = "{work / "agent"}"\n'
            "rediscovery_interval_s = 30\n"
            f"health_port = {plan.agent_port}\n"
            "[site]\n"
            # On loopback the cameras are found by unicast probes; multicast would leave by the real interfaces.
            "multicast = false\n"
            f"camera_networks = {json.dumps(plan.camera_networks)}\n"
            f'unicast_targets = ["{plan.camera_host(0)}-{last}"]\n'
            "[timeouts]\nprobe_wait_s = 1.0\n"
            # Live view: the agent publishes to the demo's media nodes on loopback.
            "[live]\nloopback_candidates = true\n"
            # Every ready camera is recorded (2 Mbit/s each); the demo keeps only the last 15 minutes.
            "[retention]\ndays = 0.0105\ninterval_s = 30\n"
            "[credentials]\n"
            f'username = "admin"\npassword_file = "{work / "camera-password"}"\n'
            "[[camera_credentials]]\n"
            f'match = "{plan.camera_host(2)}"\nusername = "admin"\npassword_file = "{work / "wrong-password"}"\n',
        )
        agent_args = ["agents", "--config", str(agent_config)]
        await run_once([*agent_args, "enrol", "--controller", plan.url, "--code", code["code"]])
        agent = Child("agent", [*agent_args, "run"], logs=logs)
        children.append(agent)
        await agent.start()
        await wait_http(f"http://127.0.0.1:{plan.agent_port}/healthz", agent, plan.timeout)

        booking_logins = await seed_bookings(plan, admin["password"], int(school["id"]))
        cameras = await technician_view(plan, "kythuat", tech["password"], int(school["id"]))
        live_lines = await seed_live(plan.url, admin["password"], int(school["id"]), cameras)
        logins = {
            "admin (quản trị / administrator)": f"admin / {admin['password']}",
            "kythuat (kỹ thuật / technician)": f"kythuat / {tech['password']}",
            **booking_logins,
            "camera (ONVIF, RTSP)": f"admin / {cam_password}",
        }
        print_summary(plan, logins, cam_password, cameras)
        for node in media_nodes:
            print(f"  Máy chủ media / media node:   {node.url}/ ({node.node_id}; {node.url}/metrics)", flush=True)
        print("\n".join(live_lines), flush=True)
        if plan.media_nodes:
            meeting_lines = await seed_meeting(plan.url, admin["password"], check=plan.check, timeout=plan.timeout)
            print("\n".join(meeting_lines), flush=True)
        if plan.check:
            print("demo check: ok", flush=True)
            return 0
        print("\nCtrl-C để dừng / to stop.", flush=True)
        await wait_for_stop(children)
        return 0
    except (ChildFailed, LiveSeedFailed, ApiRefused) as exc:
        print(f"demo: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for child in reversed(children):
            await child.stop()


async def wait_for_stop(children: list[Child]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        for child in children:
            if child.exited() is not None:
                print(f"demo: {child.name} stopped (code {child.exited()}); see {child.log_path}", file=sys.stderr)
                return


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    return asyncio.run(run(plan))


if __name__ == "__main__":
    sys.exit(main())
