"""Roster import: a dry run names each bad row and why; an apply is all-or-nothing and idempotent (a second
apply changes nothing); CSV and XLSX read the same; limits are clear; pages escape what files contain."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import openpyxl  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from sqlalchemy import func, select

from controller import state
from controller.bookings.models import Room
from controller.db.models import AuditEntry, Role, Unit, User
from controller.people import tabular
from controller.people.answers import ImportReportOut
from controller.people.importer import Kind, Report
from controller.people.models import Child, ClassPlacement, Guardianship, SchoolClass
from controller.web.people_api import run_import
from tests.controller.conftest import ORIGIN, Client, csrf_token, sign_in
from tests.controller.people.conftest import People

Cell = str | int | date | datetime | None


def csv_bytes(rows: Sequence[Sequence[Cell]], delimiter: str = ",") -> bytes:
    return "\n".join(delimiter.join("" if c is None else str(c) for c in row) for row in rows).encode("utf-8-sig")


def xlsx_bytes(rows: Sequence[Sequence[Cell]]) -> bytes:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("roster")
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def imp(
    app: web.Application, data: bytes, kind: Kind | None, *, dry_run: bool = False, name: str = "f.csv"
) -> Report:
    return await run_import(app, data, name, kind, dry_run=dry_run, actor="user:test", address=None)


async def count(app: web.Application, model: Any) -> int:
    async with app[state.DB]() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


def errors(report: Report) -> dict[int, str]:
    return {e.row: e.message for e in report.errors}


ROOT = Path(__file__).resolve().parents[3]
SCHOOL = "Mầm non Sao Mai"  # unique name in the seeded world (Hoa Sen's name has markup in it)


async def test_a_dry_run_reports_each_bad_row_with_its_number_and_why(papp: web.Application, people: People) -> None:
    rows: list[list[Cell]] = [
        ["School", "Code", "Full name", "Date of birth", "School year", "Class"],
        [SCHOOL, "C1", "Bé Một", "2021-01-02", "2025-2026", "Chồi 1"],  # 2: fine
        ["", "C2", "Bé Hai", "2021-01-02", "", ""],  # 3: missing field
        ["Trường Không Có", "C3", "Bé Ba", "2021-01-02", "", ""],  # 4: unknown school
        [SCHOOL, "C4", "Bé Bốn", "2021-13-40", "", ""],  # 5: bad date
        [SCHOOL, "C5", "Bé Năm", "31/02/2021", "", ""],  # 6: no such day
        [SCHOOL, "C6", "Bé Sáu", "2031-01-01", "", ""],  # 7: in the future
        [SCHOOL, "c1", "Bé Một Lại", "02/01/2021", "", ""],  # 8: duplicate of row 2 (codes ignore case)
        [SCHOOL, "C7", "Bé Bảy", "2021-01-02", "2025-2026", "Lá 9"],  # 9: unknown class
        [SCHOOL, "C8", "Bé Tám", "2021-01-02", "", "Chồi 1"],  # 10: class without year
        [SCHOOL, "C9", "Bé Chín", "2021-01-02", "2025-2027", "Chồi 1"],  # 11: bad school year
        [SCHOOL, "C10", "Bé Mười", "2021-01-02", "", "", "surplus"],  # 12: more cells than columns
        [str(people.district), "C11", "Bé", "2021-01-02", "", ""],  # 13: a district is not a school
        [SCHOOL, "C12", "x" * 201, "2021-01-02", "", ""],  # 14: too long
    ]
    report = await imp(papp, csv_bytes(rows), Kind.CHILDREN, dry_run=True)
    found = errors(report)
    expected = {
        3: "missing field school", 4: "unknown school 'Trường Không Có'", 5: "bad date", 6: "no such day",
        7: "not a date of birth", 8: "duplicate of row 2", 9: "unknown class 'Lá 9'", 10: "missing field school_year",
        11: "school year", 12: "more cells", 13: "unknown school", 14: "longer than 200",
    }  # fmt: skip
    assert set(found) == set(expected), found
    for row, why in expected.items():
        assert why in found[row], (row, found[row])
    assert report.created == 1 and report.error_count == len(expected) and not report.applied
    # The apply refuses the whole file while a row is bad, and writes nothing.
    applied = await imp(papp, csv_bytes(rows), Kind.CHILDREN)
    assert not applied.applied and applied.error_count == len(expected)
    assert await count(papp, Child) == 3


@pytest.mark.parametrize(
    ("kind", "rows", "why"),
    [
        (Kind.UNITS, [["name", "kind", "parent"], ["X", "galaxy", ""]], "unknown kind 'galaxy'"),
        (Kind.UNITS, [["name", "kind", "parent"], ["X", "school", ""]], "missing field parent"),
        (
            Kind.UNITS,
            [["name", "kind", "parent", "level"], ["X", "school", "Phòng GD Quận 1", "college"]],
            "unknown level",
        ),
        (
            Kind.UNITS,
            [["name", "kind", "parent", "time_zone"], ["X", "district", "Sở GD&ĐT", "Mars/Base"]],
            "time zone",
        ),
        (Kind.UNITS, [["name", "kind", "parent"], ["X", "district", "Phòng GD Quận 1"]], "unknown department"),
        (
            Kind.STAFF,
            [["username", "full_name", "role", "school"], ["a.b", "A", "principal", SCHOOL]],
            "role is one of",
        ),
        (Kind.STAFF, [["username", "full_name", "role", "school"], ["A B", "A", "teacher", SCHOOL]], "bad username"),
        (
            Kind.STAFF,
            [["username", "full_name", "role", "school"], ["admin", "A", "teacher", SCHOOL]],
            "another account",
        ),
        (Kind.CLASSES, [["school", "school_year", "name"], [SCHOOL, "2025/2026", "A"]], "school year"),
        (
            Kind.GUARDIANS,
            [["school", "child_code", "username", "relationship"], [SCHOOL, "ZZ", "me", "mother"]],
            "unknown child",
        ),
        (
            Kind.GUARDIANS,
            [["school", "child_code", "username", "relationship"], [SCHOOL, "HS001", "me", "aunt"]],
            "relationship",
        ),
        (
            Kind.GUARDIANS,
            [["school", "child_code", "username", "relationship"], [SCHOOL, "HS001", "teacher", "mother"]],
            "another account",
        ),
        (Kind.ROOMS, [["unit", "name", "capacity"], [SCHOOL, "P1", "many"]], "whole number"),
        (
            Kind.ROOMS,
            [["unit", "name", "capacity", "bandwidth_class"], [SCHOOL, "P1", "20", "huge"]],
            "bandwidth_class",
        ),
    ],
)
async def test_bad_rows_of_every_kind(
    papp: web.Application, people: People, kind: Kind, rows: list[list[Cell]], why: str
) -> None:
    report = await imp(papp, csv_bytes(rows), kind, dry_run=True)
    assert report.error_count == 1 and report.errors[0].row == 2 and why in report.errors[0].message, report.errors


async def test_a_whole_roster_applies_once_and_a_second_apply_changes_nothing(
    papp: web.Application, people: People
) -> None:
    files: list[tuple[Kind, list[list[Cell]]]] = [
        (Kind.UNITS, [["name", "kind", "parent", "level"], ["Phòng GD Quận 3", "district", "Sở GD&ĐT", ""],
                      ["MN Họa Mi", "school", "Phòng GD Quận 3", "kindergarten"],
                      ["TH Lê Lợi", "school", "Phòng GD Quận 3", "primary"]]),
        (Kind.ROOMS, [["unit", "name", "capacity", "equipment"], ["MN Họa Mi", "Phòng họp", "20", "camera; micro"]]),
        (Kind.CLASSES, [["school", "school_year", "name"], ["MN Họa Mi", "2025-2026", "Mầm 1"],
                        ["MN Họa Mi", "2025-2026", "Mầm 2"]]),
        (Kind.STAFF, [["username", "full_name", "role", "school"], ["co.hoa", "Cô Hoa", "teacher", "MN Họa Mi"]]),
        (Kind.CHILDREN, [["school", "code", "full_name", "date_of_birth", "school_year", "class"],
                         ["MN Họa Mi", "M1", "Bé A", "2021-05-06", "2025-2026", "Mầm 1"],
                         ["MN Họa Mi", "M2", "Bé B", "06/05/2021", "2025-2026", "Mầm 2"],
                         ["MN Họa Mi", "M3", "Bé C", "2021-05-06", "", ""]]),
        (Kind.GUARDIANS, [["school", "child_code", "username", "full_name", "relationship"],
                          ["MN Họa Mi", "M1", "me.a", "Mẹ A", "mother"],
                          ["MN Họa Mi", "M2", "me.a", "Mẹ A", "mother"],
                          ["MN Họa Mi", "M3", "bo.c", "Bố C", "father"]]),
    ]  # fmt: skip
    first = [await imp(papp, csv_bytes(rows), kind) for kind, rows in files]
    assert [(r.kind, r.created, r.updated, r.error_count) for r in first] == [
        (Kind.UNITS, 3, 0, 0), (Kind.ROOMS, 1, 0, 0), (Kind.CLASSES, 2, 0, 0), (Kind.STAFF, 1, 0, 0),
        (Kind.CHILDREN, 3, 0, 0), (Kind.GUARDIANS, 3, 0, 0),
    ]  # fmt: skip
    counts = [
        await count(papp, model) for model in (Unit, Room, SchoolClass, User, Child, ClassPlacement, Guardianship)
    ]
    second = [await imp(papp, csv_bytes(rows), None) for _, rows in files]  # kinds guessed from the columns
    assert [(r.kind, r.created, r.updated, r.unchanged) for r in second] == [
        (kind, 0, 0, len(rows) - 1) for kind, rows in files
    ]
    assert counts == [
        await count(papp, m) for m in (Unit, Room, SchoolClass, User, Child, ClassPlacement, Guardianship)
    ]
    async with papp[state.DB]() as session:
        parent = (await session.execute(select(User).where(User.username == "me.a"))).scalar_one()
        assert parent.role is Role.PARENT and parent.display_name == "Mẹ A" and parent.password_hash == "!imported"
        imports = (await session.execute(select(func.count()).where(AuditEntry.action == "roster.import"))).scalar_one()
        assert imports == len(files) * 2
    # Imported accounts cannot sign in until a password is set.
    assert await _cannot_sign_in(papp, "me.a")

    # A child moving class in a later file: one update, the history kept.
    moved: list[list[Cell]] = [files[4][1][0], ["MN Họa Mi", "M1", "Bé A", "2021-05-06", "2025-2026", "Mầm 2"]]
    report = await imp(papp, csv_bytes(moved), Kind.CHILDREN)
    assert (report.created, report.updated) == (0, 1)
    async with papp[state.DB]() as session:
        child = (await session.execute(select(Child).where(Child.code == "M1"))).scalar_one()
        history = (await session.execute(select(ClassPlacement).where(ClassPlacement.child_id == child.id))).scalars()
        assert [p.ended_at is None for p in history] == [False, True]


async def _cannot_sign_in(app: web.Application, username: str) -> bool:
    from controller import accounts

    async with app[state.DB].begin() as session:
        user = await accounts.authenticate(
            session,
            app[state.PASSWORDS],
            app[state.CONFIG],
            username=username,
            password="!imported",
            now=app[state.CLOCK].now(),
        )
    return user is None


async def test_xlsx_reads_like_csv_with_real_date_cells(papp: web.Application, people: People) -> None:
    rows: list[list[Cell]] = [
        ["school", "code", "full_name", "date_of_birth", "school_year", "class"],
        [SCHOOL, 1001, "Bé Xuân", datetime(2021, 2, 3), "2025-2026", "Chồi 1"],
        [SCHOOL, "1002", "Bé Hạ", "03/02/2021", None, None],
        [None, None, None, None, None, None],
        [SCHOOL, "1003", "Bé Thu", "not a date", None, None],
    ]
    dry = await imp(papp, xlsx_bytes(rows), None, dry_run=True, name="roster.xlsx")
    assert dry.kind is Kind.CHILDREN and errors(dry) == {5: "bad date 'not a date': write YYYY-MM-DD or DD/MM/YYYY"}
    good = await imp(papp, xlsx_bytes(rows[:3]), Kind.CHILDREN, name="roster.xlsx")
    again = await imp(papp, xlsx_bytes(rows[:3]), Kind.CHILDREN, name="roster.xlsx")
    assert (good.created, again.created, again.updated, again.unchanged) == (2, 0, 0, 2)
    async with papp[state.DB]() as session:
        child = (await session.execute(select(Child).where(Child.code == "1001"))).scalar_one()
    assert child.date_of_birth == date(2021, 2, 3) and child.class_id == people.other_school_class


async def test_files_that_cannot_be_read_say_why(
    papp: web.Application, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases: list[tuple[bytes, str, str]] = [
        (b"", "f.csv", "empty"),
        ("école;x\n".encode("latin-1"), "f.csv", "not UTF-8"),
        (b"PK\x03\x04 not really a zip", "f.xlsx", "not a valid XLSX"),
        (b"a,a\n1,2\n", "f.csv", "repeated column"),
        (b"school,code\nx,y\n", "f.csv", "cannot tell"),
    ]
    for data, name, why in cases:
        with pytest.raises(ValueError, match=why):
            await imp(papp, data, None, dry_run=True, name=name)
    with pytest.raises(ValueError, match="no column date_of_birth"):
        await imp(papp, b"school,code,full_name\nx,y,z\n", Kind.CHILDREN, dry_run=True)
    monkeypatch.setattr(tabular, "MAX_ROWS", 3)
    many_rows: list[list[Cell]] = [["school", "school_year", "name"]]
    many_rows += [[SCHOOL, "2025-2026", f"L{n}"] for n in range(4)]
    many = csv_bytes(many_rows)
    with pytest.raises(ValueError, match="more than 3 rows"):
        await imp(papp, many, Kind.CLASSES, dry_run=True)
    with pytest.raises(ValueError, match="more than 3 rows"):
        await imp(papp, xlsx_bytes(many_rows), Kind.CLASSES, dry_run=True, name="f.xlsx")


async def test_the_api_imports_with_a_size_limit_and_the_page_previews_escaped(
    pclient: Client, papp: web.Application, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in(pclient, people.admin)
    token = await csrf_token(pclient)
    headers = {**ORIGIN, "X-CSRF-Token": token, "Content-Type": "text/csv"}
    body = csv_bytes([["school", "school_year", "name"], [SCHOOL, "2025-2026", "Lá <b>5</b>"]])
    dry = await pclient.post("/api/import?kind=classes&dry_run=1", data=body, headers=headers)
    assert dry.status == 200 and ImportReportOut.model_validate(await dry.json()).created == 1
    applied = await pclient.post("/api/import", data=body, headers=headers)
    assert applied.status == 200 and ImportReportOut.model_validate(await applied.json()).applied is True
    unknown_school = csv_bytes([["school", "school_year", "name"], ["Trường Không Có", "2025-2026", "A"]])
    refused = await pclient.post("/api/import?kind=classes", data=unknown_school, headers=headers)
    shown = await refused.json()
    assert refused.status == 422 and shown.pop("error") == "1 bad rows: nothing applied"  # as every 4xx
    assert ImportReportOut.model_validate(shown).errors[0].row == 2
    bad = await pclient.post("/api/import?kind=rooms", data=body, headers=headers)
    assert bad.status == 400 and "no column unit" in (await bad.json())["error"]
    wrong_kind = await pclient.post("/api/import?kind=pets", data=body, headers=headers)
    assert wrong_kind.status == 422  # a query parameter the route refuses (jsonbody's rule)
    monkeypatch.setattr(tabular, "MAX_FILE_BYTES", 1024 * 1024)
    huge = await pclient.post("/api/import", data=io.BytesIO(b"x" * (1024 * 1024 + 1)), headers=headers)
    assert huge.status == 413 and "larger than 1 MiB" in (await huge.json())["error"]

    upload = aiohttp.FormData()
    upload.add_field("csrf_token", token)
    upload.add_field("mode", "dry_run")
    upload.add_field("kind", "")
    rows = [["school", "school_year", "name"], ["<script>alert(1)</script>", "2025-2026", "A"]]
    upload.add_field("file", csv_bytes(rows), filename="lop.csv", content_type="text/csv")
    page = await pclient.post("/admin/import", data=upload, headers=ORIGIN)
    text = await page.text()
    assert page.status == 422 and "&lt;script&gt;" in text and "<script>alert" not in text
    assert "<td>2</td>" in text

    await sign_in(pclient, people.technician)
    refused = await pclient.post(
        "/api/import", data=body, headers={**headers, "X-CSRF-Token": await csrf_token(pclient)}
    )
    assert refused.status == 403


@pytest.mark.slow
async def test_twenty_thousand_children_import_in_bounded_time(papp: web.Application, people: People) -> None:
    classes = [["school", "school_year", "name"]] + [[SCHOOL, "2025-2026", f"Lớp {n}"] for n in range(40)]
    assert (await imp(papp, csv_bytes(classes), Kind.CLASSES)).created == 40
    rows: list[list[Cell]] = [["school", "code", "full_name", "date_of_birth", "school_year", "class"]]
    rows += [[SCHOOL, f"K{n:05d}", f"Bé số {n}", "2021-06-01", "2025-2026", f"Lớp {n % 40}"] for n in range(20_000)]
    data = csv_bytes(rows)
    started = time.monotonic()
    dry = await imp(papp, data, Kind.CHILDREN, dry_run=True)
    applied = await imp(papp, data, Kind.CHILDREN)
    first = time.monotonic() - started
    again = await imp(papp, data, Kind.CHILDREN)
    total = time.monotonic() - started
    assert (dry.created, applied.created, again.created, again.unchanged) == (20_000, 20_000, 0, 20_000)
    assert await count(papp, Child) == 20_003 and await count(papp, ClassPlacement) == 20_003
    assert first < 60 and total < 120, (first, total)


def test_the_command_line_import_checks_applies_and_draws_a_progress_bar(tmp_path: Path) -> None:
    env = {**os.environ, "KETNOI_CONTROLLER_DATA_DIR": str(tmp_path / "data")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "controller", "import", *args], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip

    units = tmp_path / "units.csv"
    units.write_bytes(csv_bytes([["name", "kind", "parent", "level"], ["Sở GD&ĐT", "department", "", ""],
                                 ["MN Hoa Mai", "school", "Sở GD&ĐT", "kindergarten"]]))  # fmt: skip
    classes = tmp_path / "classes.xlsx"
    classes.write_bytes(xlsx_bytes([["school", "school_year", "name"], ["MN Hoa Mai", "2025-2026", "Lá 1"]]))
    children = tmp_path / "children.csv"
    rows: list[list[Cell]] = [["school", "code", "full_name", "date_of_birth", "school_year", "class"]]
    rows += [["MN Hoa Mai", f"K{n}", f"Bé {n}", "2021-06-01", "2025-2026", "Lá 1"] for n in range(1500)]
    rows.append(["MN Hoa Mai", "K0", "Bé lặp", "2021-06-01", "", ""])
    children.write_bytes(csv_bytes(rows))

    dry = run(str(units), "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["created"] == 2, dry.stderr
    assert run(str(units)).returncode == 0
    assert run(str(classes), "--kind", "classes").returncode == 0
    bad = run(str(children))
    assert bad.returncode == 1 and "row 1502: duplicate of row 2" in bad.stdout and "NOT applied" in bad.stdout
    assert "[##############################] 100%" in bad.stderr  # the bar, on stderr only
    children.write_bytes(csv_bytes(rows[:-1]))
    good = run(str(children), "--json")
    assert good.returncode == 0 and json.loads(good.stdout)["created"] == 1500, good.stderr
    again = json.loads(run(str(children), "--json").stdout)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 1500)
    missing = run(str(tmp_path / "nothing.csv"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
