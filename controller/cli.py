"""`python -m controller`: serve, migrate, and the operator commands the demo and ops use until #3's admin pages.

Every command takes --config PATH (TOML; KETNOI_CONTROLLER_* variables override it) and migrates the
database first, so they work on a fresh install. --json prints one JSON object on stdout for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from common.clock import SystemClock
from common.config import ConfigError, load_config
from common.logs import setup_logging
from controller import accounts, audit
from controller.app import build_app
from controller.config import ENV_PREFIX, ControllerConfig, load_secret_key
from controller.db.engine import create_engine, session_factory
from controller.db.migrate import upgrade
from controller.db.models import Role, SchoolLevel, UnitKind
from controller.people import cli_import
from controller.security.passwords import Passwords, generate_password
from controller.sso import cli as sso_cli
from controller.units import UnitError, create_unit
from controller.uplink.codes import CodeError, make_code

Command = Callable[[AsyncSession, ControllerConfig, argparse.Namespace], Awaitable[dict[str, Any]]]


class CommandError(Exception):
    """The command cannot do what was asked; the message says why."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m controller", description="The ketnoi controller.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", metavar="PATH", help=f"TOML configuration file ({ENV_PREFIX}_* overrides it)")
        return sub

    command("serve", "Run the controller's HTTP server (migrates the database first).")
    command("migrate", "Bring the database schema up to date.")
    admin = command("create-admin", "Create a user and print its random password once.")
    admin.add_argument("--username", required=True)
    admin.add_argument("--role", choices=[Role.ADMIN.value, Role.DISTRICT_TECHNICIAN.value], default=Role.ADMIN.value)
    admin.add_argument("--unit", type=int, help="the district a district_technician is scoped to")
    admin.add_argument("--display-name", default="")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    admin.add_argument("--json", action="store_true", help="print a JSON object")
    unit = command("create-unit", "Create a unit (department, district or school).")
    unit.add_argument("--name", required=True)
    unit.add_argument("--kind", choices=[k.value for k in UnitKind], required=True)
    unit.add_argument("--level", choices=[lv.value for lv in SchoolLevel], help="school level (schools only)")
    unit.add_argument("--parent", type=int, help="parent unit id")
    unit.add_argument("--camera-network", nargs="*", default=[], metavar="CIDR", help="the school's camera networks")
    unit.add_argument("--json", action="store_true", help="print a JSON object")
    code = command("enrolment-code", "Make a one-time enrolment code for a school and print it once.")
    code.add_argument("--unit", type=int, required=True)
    code.add_argument("--json", action="store_true", help="print a JSON object")
    cli_import.add_arguments(command("import", "Import a roster file (CSV or XLSX): check every row, then apply."))
    sso_cli.add_arguments(command("sso-link", "Link a local user to their Department (single sign-on) account."))
    return parser


async def _create_admin(session: AsyncSession, config: ControllerConfig, args: argparse.Namespace) -> dict[str, Any]:
    generated = not args.password_stdin
    if generated:
        password = generate_password()
    else:
        password = await asyncio.to_thread(sys.stdin.readline)
        password = password.rstrip("\r\n")
    passwords = Passwords()
    try:
        user = await accounts.create_user(
            session,
            passwords,
            username=args.username,
            password=password,
            role=Role(args.role),
            unit_id=args.unit,
            display_name=args.display_name,
            now=_now(),
        )
    except accounts.AccountError as exc:
        raise CommandError(str(exc)) from None
    details = {"role": user.role.value, "unit_id": user.unit_id}
    audit.record(session, at=_now(), actor="cli", action="user.create", target=f"user:{user.username}", details=details)
    result: dict[str, Any] = {
        "id": user.id,
        "username": user.username,
        "role": user.role.value,
        "unit_id": user.unit_id,
    }
    if generated:
        result["password"] = password
    return result


async def _create_unit(session: AsyncSession, config: ControllerConfig, args: argparse.Namespace) -> dict[str, Any]:
    try:
        unit = await create_unit(
            session,
            name=args.name,
            kind=UnitKind(args.kind),
            parent_id=args.parent,
            school_level=SchoolLevel(args.level) if args.level else None,
            camera_networks=args.camera_network,
            now=_now(),
        )
    except (UnitError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    audit.record(session, at=_now(), actor="cli", action="unit.create", target=f"unit:{unit.id}")
    return {
        "id": unit.id,
        "name": unit.name,
        "kind": unit.kind.value,
        "school_level": unit.school_level.value if unit.school_level else None,
        "parent_id": unit.parent_id,
        "camera_networks": unit.camera_networks,
    }


async def _enrolment_code(session: AsyncSession, config: ControllerConfig, args: argparse.Namespace) -> dict[str, Any]:
    key = await asyncio.to_thread(load_secret_key, config.effective_secret_key_file)
    try:
        code = await make_code(
            session, key, unit_id=args.unit, now=_now(), lifetime_s=config.enrolment_code_lifetime_s, created_by=None
        )
    except CodeError as exc:
        raise CommandError(str(exc)) from None
    audit.record(session, at=_now(), actor="cli", action="enrolment_code.create", target=f"unit:{args.unit}")
    return {"code": code.code, "unit_id": code.unit_id, "expires_at": code.expires_at.isoformat()}


async def _migrate(session: AsyncSession, config: ControllerConfig, args: argparse.Namespace) -> dict[str, Any]:
    return {"migrated": True}


async def _import(session: AsyncSession, config: ControllerConfig, args: argparse.Namespace) -> dict[str, Any]:
    try:
        return await cli_import.run(session, args)
    except cli_import.CommandFailed as exc:
        raise CommandError(str(exc)) from None


async def _sso_link(session: AsyncSession, config: ControllerConfig, args: argparse.Namespace) -> dict[str, Any]:
    try:
        return await sso_cli.link_command(session, config, args)
    except sso_cli.LinkError as exc:
        raise CommandError(str(exc)) from None


def _now() -> datetime:
    return SystemClock().now()


COMMANDS: dict[str, Command] = {
    "migrate": _migrate,
    "create-admin": _create_admin,
    "create-unit": _create_unit,
    "enrolment-code": _enrolment_code,
    "import": _import,
    "sso-link": _sso_link,
}


async def _run(config: ControllerConfig, args: argparse.Namespace) -> dict[str, Any]:
    engine = create_engine(config.effective_database_url, config.database_schema)
    try:
        await upgrade(engine)
        async with session_factory(engine).begin() as session:
            return await COMMANDS[args.command](session, config, args)
    finally:
        await engine.dispose()


def _print(command: str, result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    if command == "create-admin":
        print(f"created {result['role']} {result['username']} (id {result['id']})")
        if "password" in result:
            print(f"password (shown once, store it now): {result['password']}")
    elif command == "create-unit":
        print(f"created {result['kind']} {result['name']} (id {result['id']})")
    elif command == "enrolment-code":
        print(f"enrolment code for unit {result['unit_id']} (shown once, expires {result['expires_at']}):")
        print(result["code"])
    elif command == "import":
        print(cli_import.describe(result))
    elif command == "sso-link":
        print(f"linked {result['username']} to {result['subject']} at {result['issuer']}")
    else:
        print("database is up to date")


async def _freeze_heap(app: web.Application) -> None:
    """After start-up (imports, migration, templates), move every object alive then out of the collector's
    reach: a full (generation 2) collection otherwise walks that whole heap, 30-45 ms with the loop stopped,
    every few seconds under load, and the requests waiting on the loop meanwhile are the latency tail."""
    gc.collect()
    gc.freeze()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(ControllerConfig, args.config, ENV_PREFIX)
    except ConfigError as exc:
        print(f"controller: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level if args.command == "serve" else "WARNING")
    try:
        if args.command == "serve":
            app = build_app(config)
            app.on_startup.append(_freeze_heap)
            print(f"controller: serving on http://{config.host}:{config.port}", file=sys.stderr)
            web.run_app(app, host=config.host, port=config.port, print=None)
            return 0
        result = asyncio.run(_run(config, args))
    except (CommandError, ConfigError) as exc:
        print(f"controller: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"controller: {exc}", file=sys.stderr)
        return 1
    _print(args.command, result, getattr(args, "json", False))
    return 1 if result.get("error_count") else 0
