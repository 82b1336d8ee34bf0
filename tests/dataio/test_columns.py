"""Mapping suggestions from headers and the conversion of cells."""

from __future__ import annotations

from datetime import datetime

from dataio import columns


def test_suggestions_from_usual_headers_and_custom_for_the_rest() -> None:
    headers = [
        "E-Mail",
        "First Name",
        "Surname",
        "Company",
        "No. of employees",
        "Newsletter",
        "Closed",
        "Outcome",
        "Shoe size",
    ]
    assert columns.suggest(headers) == [
        "email",
        "first_name",
        "last_name",
        "company_name",
        "custom:no_of_employees",
        "marketing_consent",
        "outcome_date",
        "outcome",
        "custom:shoe_size",
    ]


def test_a_second_column_for_the_same_field_becomes_custom() -> None:
    assert columns.suggest(["email", "Mail"]) == ["email", "custom:mail"]


def test_without_outcomes_the_outcome_columns_are_not_suggested() -> None:
    assert columns.suggest(["Outcome"], outcomes=False) == ["custom:outcome"]


def test_mapping_problems_are_explained() -> None:
    assert columns.check_mapping(["email", "email"], outcomes=False)
    assert columns.check_mapping(["email", "nonsense"], outcomes=False)
    assert "both an outcome" in " ".join(columns.check_mapping(["email", "outcome"], outcomes=True))
    assert columns.check_mapping(["email", "custom:Bad Name"], outcomes=False)
    assert columns.check_mapping(["email", "custom:plan", ""], outcomes=False) == []


def test_cells_convert_or_say_what_to_write() -> None:
    row = columns.to_import_row(
        7,
        ["ann@example.com", "1,200", "yes", "2026-03-14", "Won", "Referral", "0123", "42"],
        ["e", "n", "c", "d", "o", "s", "zip", "seats"],
        [
            "email",
            "employee_count",
            "marketing_consent",
            "outcome_date",
            "outcome",
            "source",
            "custom:zip",
            "custom:seats",
        ],
    )
    assert row.problem == ""
    assert row.fields == {
        "email": "ann@example.com",
        "employee_count": 1200,
        "marketing_consent": True,
        "source": "referral",
    }
    assert row.outcome == "won"
    assert isinstance(row.outcome_at, datetime)
    assert row.custom == {"zip": "0123", "seats": 42}
    bad = columns.to_import_row(
        9, ["maybe", "lots"], ["Newsletter", "Staff"], ["marketing_consent", "employee_count"]
    )
    assert "Newsletter: use yes or no" in bad.problem
    assert "Staff: use a whole number" in bad.problem


def test_a_row_with_more_values_than_columns_is_refused() -> None:
    row = columns.to_import_row(
        3, ["a@example.com", "x", "extra"], ["email", "name"], ["email", "first_name"]
    )
    assert "3 values but the header names 2 columns" in row.problem
