"""Spam detectors are pure functions: tested without a database."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.detectors import (
    disposable_email,
    email_name_mismatch,
    flag_column,
    keyboard_mash,
    name_not_capitalised,
)


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        ("Ada", "Lovelace", False),
        ("ada", "lovelace", True),
        ("Ada", "lovelace", True),
        ("JOHN", "SMITH", True),
        ("Ludwig", "van Beethoven", False),  # particles are lower case on purpose
        ("", "", False),
        ("Li", "Wu", False),
    ],
)
def test_name_not_capitalised(first: str, last: str, expected: bool) -> None:
    assert name_not_capitalised(first, last) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("asdfgh", True),
        ("Qwerty Ltd", True),
        ("aaaaaa", True),
        ("jjjj kkkk", True),
        ("xkcdqwrtz", True),
        ("hjkl", True),
        ("1111", True),
        ("Olivia Smith", False),
        ("Analytical Engines Ltd", False),
        ("Müller GmbH", False),
        ("Bob", False),
        ("Liberty Property Trust", False),  # "erty" is a keyboard run, but too short to judge
        ("Hertz", False),
        ("Schmidt", False),
        ("lalala", True),
    ],
)
def test_keyboard_mash(text: str, expected: bool) -> None:
    assert keyboard_mash(text) is expected


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("x@mailinator.com", True),
        ("x@eu.mailinator.com", True),
        ("someone@YOPMAIL.com", True),
        ("ada@example.com", False),
        ("ada@mailinator.com.example.org", False),
        ("", False),
    ],
)
def test_disposable_email(email: str, expected: bool) -> None:
    assert disposable_email(email) is expected


@pytest.mark.parametrize(
    ("email", "first", "last", "expected"),
    [
        ("ada.lovelace@example.com", "Ada", "Lovelace", False),
        ("alovelace@example.com", "Ada", "Lovelace", False),
        ("a.lovelace@example.com", "Ada", "Lovelace", False),
        ("info@example.com", "Ada", "Lovelace", False),
        ("jane.doe@example.com", "Max", "Power", True),  # someone else's address
        ("test@example.com", "Test", "Test", True),  # placeholder name
        ("ada@example.com", "asdf", "", True),
        ("ms.mueller@example.com", "Jörg", "Müller", False),
    ],
)
def test_email_name_mismatch(email: str, first: str, last: str, expected: bool) -> None:
    assert email_name_mismatch(email, first, last) is expected


@pytest.mark.parametrize("size", [3, 500])  # the small-batch path and the factorized path agree
def test_flag_column_matches_the_scalar_detectors(size: int) -> None:
    firsts = np.array((["Ada", "asdf", "john", "Olivia"] * size)[:size], dtype=object)
    lasts = np.array((["Lovelace", "qwerty", "smith", "Smith"] * size)[:size], dtype=object)
    emails = np.array(
        [f"user{i}@{'mailinator.com' if i % 3 == 0 else 'example.com'}" for i in range(size)], dtype=object
    )
    companies = np.array(["Acme"] * size, dtype=object)

    mash = flag_column("keyboard_mash", [firsts, lasts, companies])
    caps = flag_column("name_not_capitalised", [firsts, lasts])
    disposable = flag_column("disposable_email", [emails])
    mismatch = flag_column("email_name_mismatch", [emails, firsts, lasts])

    for i in range(size):
        assert mash[i] == (keyboard_mash(firsts[i]) or keyboard_mash(lasts[i]) or keyboard_mash(companies[i]))
        assert caps[i] == name_not_capitalised(firsts[i], lasts[i])
        assert disposable[i] == disposable_email(emails[i])
        assert mismatch[i] == email_name_mismatch(emails[i], firsts[i], lasts[i])
    assert disposable.any()
    assert mash.any()
    assert caps.any()
