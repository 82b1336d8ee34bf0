"""Reading an uploaded CSV or Excel file into rows of text, or refusing it with a clear message.

Everything about the file as a whole is decided here, before a single row is imported: its size,
its encoding (UTF-8 with or without a BOM, UTF-16 from Excel's "Unicode text", else Windows-1252
with a note), the separator (`,` `;` tab or `|`), whether the first line holds column names, NUL
bytes, and whether there is any data at all. A refused file imports nothing.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.conf import settings

EMAIL_LIKE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NUMBER_LIKE = re.compile(r"^[-+]?\d[\d.,\s]*$")
DATE_LIKE = re.compile(r"^\d{1,4}[-./]\d{1,2}[-./]\d{1,4}")
DELIMITERS = ",;\t|"
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}


class FileProblem(Exception):
    """The file cannot be imported at all; the message says why and what to do."""


@dataclass
class Table:
    headers: list[str]
    rows: list[tuple[int, list[str]]]  # (line in the file, cells)
    notes: list[str] = field(default_factory=list)


def max_bytes() -> int:
    return int(settings.DATAIO_MAX_UPLOAD_MB) * 1024 * 1024


def too_big_message(size: int) -> str:
    return (
        f"The file is {size / 1024 / 1024:.1f} MB; the limit is {settings.DATAIO_MAX_UPLOAD_MB} MB. "
        "Split it into smaller files (or leave out columns you do not need) and import them one by one."
    )


def read_table(data: bytes, name: str = "") -> Table:
    """The file's column names and data rows, or FileProblem."""
    if len(data) > max_bytes():
        raise FileProblem(too_big_message(len(data)))
    if not data.strip():
        raise FileProblem(
            "The file is empty. Export your leads with a header row and at least one row of data."
        )
    lower = name.lower()
    if data[:4] == b"PK\x03\x04" or lower.endswith((".xlsx", ".xlsm")):
        return _check(_excel_rows(data))
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" or lower.endswith(".xls"):
        raise FileProblem(
            "This is an old Excel file (.xls). Open it in Excel or LibreOffice and save it as .xlsx or CSV."
        )
    text, notes = _decode(data)
    return _check(_csv_rows(text), notes)


def _decode(data: bytes) -> tuple[str, list[str]]:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16"), ["Read as UTF-16 text (Excel's “Unicode text”)."]
        except UnicodeDecodeError:
            raise FileProblem("The file says it is UTF-16 text but is not. Save it as “CSV UTF-8”.") from None
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise FileProblem(
            f"Line {line} contains a NUL byte, so this is not a text CSV file (perhaps a binary or "
            "UTF-16 file without its marker). Save it from your spreadsheet as “CSV UTF-8”."
        )
    try:
        text = data.decode("utf-8-sig")  # a BOM (Excel's “CSV UTF-8”) is dropped
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        try:
            text = data.decode("cp1252")
            encoding = "Windows-1252 (Western European)"
        except UnicodeDecodeError:
            text = data.decode("latin-1")
            encoding = "Latin-1 (ISO 8859-1)"
        return text, [
            f"The file is not UTF-8 (first at line {line}); it was read as {encoding}. Check that "
            "accented names look right below; if not, save the file as “CSV UTF-8” and upload it again."
        ]
    return text, (
        ["The file starts with a byte order mark (BOM); it was ignored."]
        if data[:3] == b"\xef\xbb\xbf"
        else []
    )


def _delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first = text.splitlines()[0] if text else ""
        counts = {d: first.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def _csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line = 1
    try:
        for cells in reader:
            yield line, cells
            line = reader.line_num + 1
    except csv.Error as exc:
        raise FileProblem(f"Line {line} could not be read as CSV ({exc}). Check its quotes.") from None


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ") if value.time() != time(0) else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _excel_rows(data: bytes) -> Iterator[tuple[int, list[str]]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise FileProblem(
            f"This Excel file could not be opened ({type(exc).__name__}). Save it again as .xlsx or CSV."
        ) from None
    try:
        sheet = book.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [_cell_text(v) for v in values]
    finally:
        book.close()


def _looks_like_data(cells: list[str]) -> bool:
    """A first line holding an email, a number or a date is data, not column names."""
    for cell in cells:
        value = cell.strip()
        if EMAIL_LIKE.match(value) or NUMBER_LIKE.match(value) or DATE_LIKE.match(value):
            return True
    return False


def _check(lines: Iterator[tuple[int, list[str]]], notes: list[str] | None = None) -> Table:
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    limit = int(settings.DATAIO_MAX_ROWS)
    for line, cells in lines:
        if not any(c.strip() for c in cells):
            continue  # blank lines (and Excel's empty trailing rows) are not rows
        for cell in cells:
            if "\x00" in cell:
                raise FileProblem(
                    f"Line {line} contains a NUL character. Save the file as “CSV UTF-8” and try again."
                )
        if header is None:
            if _looks_like_data(cells):
                raise FileProblem(
                    f"Line {line} looks like data (an email, number or date), not column names. Add a "
                    "first line naming each column, e.g. first_name,last_name,email,company_name."
                )
            header = _headers(cells)
            continue
        rows.append((line, cells))
        if len(rows) > limit:
            raise FileProblem(
                f"The file has more than {limit:,} rows. Split it and import the parts one by one."
            )
    if header is None:
        raise FileProblem(
            "The file is empty. Export your leads with a header row and at least one row of data."
        )
    if not rows:
        raise FileProblem(
            "The file has column names but no rows of data. Check that you exported the right sheet or file."
        )
    if len(header) == 1 and rows and any(d in header[0] for d in ";\t|"):
        raise FileProblem(
            "The columns could not be told apart. Use a comma, semicolon or tab between values."
        )
    return Table(header, rows, list(notes or []))


def _headers(cells: list[str]) -> list[str]:
    names: list[str] = []
    while cells and not cells[-1].strip():
        cells = cells[:-1]  # Excel pads the header with empty cells
    for number, cell in enumerate(cells, start=1):
        name = " ".join(cell.split()) or f"Column {number}"
        base, n = name, 2
        while name in names:
            name, n = f"{base} ({n})", n + 1
        names.append(name)
    return names
