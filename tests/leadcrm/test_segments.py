from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from leadcrm.models import SegmentKind
from leadcrm.segments import validate_criteria
from leadcrm.services import add_to_segment, refresh_dynamic_segment
from tests.factories import make_lead, make_segment


@pytest.mark.parametrize(
    ("criteria", "fragment"),
    [
        ({}, "criteria as an object"),
        ({"shoe_size": 42}, "Unknown lead field"),
        ({"employee_count__icontains": "5"}, "supports"),
        ({"employee_count__gte": "fifty"}, "not a number"),
        ({"country__in": "DE"}, "list"),
    ],
)
def test_bad_criteria_are_explained(criteria: dict, fragment: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_criteria(criteria)
    assert fragment in str(err.value)


@pytest.mark.django_db
def test_dynamic_segment_follows_its_criteria() -> None:
    small = make_lead(industry="Retail", employee_count=10)
    big = make_lead(industry="Retail", employee_count=100)
    make_lead(industry="Software", employee_count=100)
    segment = make_segment(
        kind=SegmentKind.DYNAMIC, criteria={"industry__iexact": "retail", "employee_count__gte": 50}
    )

    assert refresh_dynamic_segment(segment=segment) == 1
    assert list(segment.members.all()) == [big]

    small.employee_count = 60
    small.save()
    assert refresh_dynamic_segment(segment=segment) == 2


@pytest.mark.django_db
def test_static_segment_adds_each_lead_once() -> None:
    segment = make_segment()
    lead = make_lead()
    assert add_to_segment(segment=segment, leads=[lead, lead.pk]) == 1
    assert add_to_segment(segment=segment, leads=[lead]) == 0
