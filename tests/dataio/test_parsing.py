"""The file as a whole: encodings, separators, header, size, NUL bytes, Excel; refused files say why."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from dataio.parsing import FileProblem, read_table

HEADER = "first_name,last_name,email\n"


def test_utf8_with_bom_is_read_and_the_bom_dropped() -> None:
    table = read_table(("\ufeff" + HEADER + "Zoë,Ärger,zoe@example.com\n").encode("utf-8"), "a.csv")
    assert table.headers == ["first_name", "last_name", "email"]
    assert table.rows == [(2, ["Zoë", "Ärger", "zoe@example.com"])]
    assert "byte order mark" in table.notes[0]


def test_latin1_is_read_as_windows_1252_with_a_note() -> None:
    table = read_table((HEADER + "José,Müller,jose@example.com\n").encode("latin-1"), "a.csv")
    assert table.rows[0][1][:2] == ["José", "Müller"]
    assert "not UTF-8" in table.notes[0]
    assert "line 2" in table.notes[0]


def test_utf16_from_excel_unicode_text_is_read() -> None:
    data = "first_name\temail\nZoë\tzoe@example.com\n".encode("utf-16")
    table = read_table(data, "a.txt")
    assert table.rows == [(2, ["Zoë", "zoe@example.com"])]


@pytest.mark.parametrize("sep", [";", "\t", ","])
def test_separator_is_detected(sep: str) -> None:
    text = (
        sep.join(["first_name", "email", "company"])
        + "\n"
        + sep.join(["Ann", "ann@example.com", "A, B & Co"])
        + "\n"
    )
    table = read_table(text.encode(), "a.csv")
    assert table.headers == ["first_name", "email", "company"]
    assert table.rows[0][1][1] == "ann@example.com"


def test_a_file_without_header_is_refused() -> None:
    with pytest.raises(FileProblem, match="Line 1 looks like data"):
        read_table(b"Ann,Lee,ann@example.com\nBob,Ray,bob@example.com\n", "a.csv")


def test_zero_rows_and_empty_files_are_refused() -> None:
    with pytest.raises(FileProblem, match="no rows of data"):
        read_table(HEADER.encode(), "a.csv")
    with pytest.raises(FileProblem, match="empty"):
        read_table(b"  \n\n", "a.csv")


def test_a_file_over_the_limit_is_refused(settings) -> None:
    settings.DATAIO_MAX_UPLOAD_MB = 1
    with pytest.raises(FileProblem, match=r"limit is 1 MB"):
        read_table(HEADER.encode() + b"a,b,c@example.com\n" * 70_000, "a.csv")


def test_a_nul_byte_is_refused_naming_its_line() -> None:
    with pytest.raises(FileProblem, match="Line 3 contains a NUL byte"):
        read_table((HEADER + "Ann,Lee,ann@example.com\nBo\x00b,Ray,bob@example.com\n").encode(), "a.csv")


def test_line_numbers_count_quoted_newlines_and_blank_lines() -> None:
    text = HEADER + '"Ann\nMarie",Lee,ann@example.com\n\nBob,Ray,bob@example.com\n'
    assert [line for line, _ in read_table(text.encode(), "a.csv").rows] == [2, 5]


def test_excel_files_are_read() -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["First name", "Email", "Employees"])
    sheet.append(["Ann", "ann@example.com", 120])
    out = io.BytesIO()
    book.save(out)
    table = read_table(out.getvalue(), "leads.xlsx")
    assert table.headers == ["First name", "Email", "Employees"]
    assert table.rows == [(2, ["Ann", "ann@example.com", "120"])]


def test_old_excel_and_broken_xlsx_are_refused_with_what_to_do() -> None:
    with pytest.raises(FileProblem, match=r"\.xls"):
        read_table(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"0" * 100, "old.xls")
    with pytest.raises(FileProblem, match="could not be opened"):
        read_table(b"PK\x03\x04 not really a zip", "x.xlsx")
