"""Dynamic segment criteria: a small, validated filter language over Lead fields.

Criteria are a JSON object of Django-style lookups, e.g.
``{"industry": "Retail", "employee_count__gte": 50, "country__in": ["DE", "AT"]}``.
Only the fields and lookups listed here are accepted, so a manager's typo is a clear form error
rather than a crash at refresh time.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q

TEXT_FIELDS = {
    "first_name",
    "last_name",
    "email",
    "company_name",
    "industry",
    "job_title",
    "country",
    "city",
    "preferred_language",
    "source",
    "status",
    "grade",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "annual_revenue_band",
}
NUMBER_FIELDS = {
    "employee_count",
    "rule_score",
    "fit_score",
    "engagement_score",
    "ml_probability",
    "priority",
}
TEXT_LOOKUPS = {"", "iexact", "icontains", "istartswith", "in", "isnull"}
NUMBER_LOOKUPS = {"", "gt", "gte", "lt", "lte", "in", "isnull"}


def validate_criteria(criteria: Any) -> None:
    """Raise ValidationError naming the first criterion that is not understood."""
    if not isinstance(criteria, dict) or not criteria:
        raise ValidationError({"criteria": 'Give criteria as an object, e.g. {"industry": "Retail"}.'})
    for key, value in criteria.items():
        field, _, lookup = key.partition("__")
        if field.startswith("custom"):
            if not isinstance(value, str | int | float | bool):
                raise ValidationError({"criteria": f"{key}: custom attributes compare with a plain value."})
            continue
        if field in TEXT_FIELDS:
            allowed = TEXT_LOOKUPS
        elif field in NUMBER_FIELDS:
            allowed = NUMBER_LOOKUPS
        else:
            raise ValidationError({"criteria": f"Unknown lead field {field!r}."})
        if lookup not in allowed:
            raise ValidationError(
                {"criteria": f"{key}: {field} supports {', '.join(sorted(x or 'equals' for x in allowed))}."}
            )
        if lookup == "in" and not isinstance(value, list):
            raise ValidationError({"criteria": f"{key} needs a list of values."})
        if field in NUMBER_FIELDS and lookup not in ("in", "isnull") and not isinstance(value, int | float):
            raise ValidationError({"criteria": f"{key} compares numbers; {value!r} is not a number."})


def criteria_q(criteria: dict[str, Any]) -> Q:
    """The validated criteria as one Q object (custom__x lookups go into the JSON field)."""
    validate_criteria(criteria)
    return Q(**criteria)
