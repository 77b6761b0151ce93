"""Reading a roster file (CSV or XLSX) into numbered rows of text, within size and row limits.

CSV: UTF-8 (a BOM is fine), comma, semicolon or tab separated, a header row first. XLSX: the first sheet, a
header row first (openpyxl, read-only; the archive's unpacked size is checked before it is opened, so a zip
bomb is refused). Headers are matched case-insensitively, spaces read as underscores. Row numbers are the
file's own (the header is row 1), so a person can find the row in a spreadsheet.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_ROWS = 50_000
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_CELL_CHARS = 500
MAX_COLUMNS = 50


class TableError(ValueError):
    """The file as a whole cannot be read; the message says why."""


@dataclass(frozen=True)
class Row:
    number: int
    values: dict[str, str]
    problem: str | None = None
    """Set when the row itself is malformed (more cells than headers, a cell too long)."""


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: list[Row]


def normalize_header(value: str) -> str:
    return "_".join(value.strip().lower().split())


def read_table(data: bytes, filename: str = "") -> Table:
    if len(data) > MAX_FILE_BYTES:
        raise TableError(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: split it")
    if not data.strip():
        raise TableError("the file is empty")
    if data[:4] == b"PK\x03\x04" or filename.lower().endswith(".xlsx"):
        return _table(_xlsx_rows(data))
    return _table(_csv_rows(data))


def _table(source: list[tuple[int, list[str]]]) -> Table:
    header: tuple[str, ...] | None = None
    rows: list[Row] = []
    for number, cells in source:
        if header is None:
            if not any(cell.strip() for cell in cells):
                continue
            header = tuple(normalize_header(cell) for cell in cells)
            while header and not header[-1]:
                header = header[:-1]
            if len(header) > MAX_COLUMNS:
                raise TableError(f"more than {MAX_COLUMNS} columns")
            if len(set(header)) != len(header) or "" in header:
                raise TableError("the header row has an empty or repeated column name")
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(rows) >= MAX_ROWS:
            raise TableError(f"more than {MAX_ROWS} rows: split the file")
        rows.append(_row(number, header, cells))
    if header is None:
        raise TableError("the file has no header row")
    return Table(header, rows)


def _row(number: int, header: tuple[str, ...], cells: list[str]) -> Row:
    problem = None
    extra = cells[len(header) :]
    if any(cell.strip() for cell in extra):
        problem = f"more cells ({len(cells)}) than columns ({len(header)})"
    values = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
    if problem is None and any(len(value) > MAX_CELL_CHARS for value in values.values()):
        problem = f"a cell longer than {MAX_CELL_CHARS} characters"
    return Row(number, values, problem)


def _csv_rows(data: bytes) -> list[tuple[int, list[str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TableError(f"the CSV file is not UTF-8 (byte {exc.start}): save it as CSV UTF-8") from None
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    out: list[tuple[int, list[str]]] = []
    try:
        line = 1
        for cells in reader:
            out.append((line, cells))
            line = reader.line_num + 1
            if len(out) > MAX_ROWS + 2:
                raise TableError(f"more than {MAX_ROWS} rows: split the file")
    except csv.Error as exc:
        raise TableError(f"the CSV file cannot be read near line {reader.line_num}: {exc}") from None
    return out


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _xlsx_rows(data: bytes) -> list[tuple[int, list[str]]]:
    import openpyxl  # type: ignore[import-untyped]  # openpyxl ships no type information

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise TableError("the file is not a valid XLSX workbook") from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise TableError("the XLSX workbook unpacks to too much data")
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds (KeyError, InvalidFileException, XML errors)
        raise TableError(f"the XLSX workbook cannot be read: {type(exc).__name__}") from None
    out: list[tuple[int, list[str]]] = []
    try:
        sheet = workbook.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            out.append((number, [_cell(value) for value in values[: MAX_COLUMNS + 1]]))
            if len(out) > MAX_ROWS + 2:
                raise TableError(f"more than {MAX_ROWS} rows: split the file")
    finally:
        workbook.close()
    return out
