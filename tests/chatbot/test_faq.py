"""The FAQ matcher cache: fitted once per process and FAQ version, refitted when an entry changes."""

from __future__ import annotations

import pytest
from django.utils import timezone

from chatbot import faq
from chatbot.models import FaqEntry, Site

pytestmark = pytest.mark.django_db


@pytest.fixture
def site() -> Site:
    site = Site.objects.create(name="Bakery")
    FaqEntry.objects.create(site=site, question="When do you open?", answer="At nine.")
    FaqEntry.objects.create(site=site, question="Do you deliver?", answer="Within the city.")
    return site


def test_a_fitted_matcher_is_reused_without_a_query(site, django_assert_num_queries) -> None:
    first = faq.faq_index(site)
    with django_assert_num_queries(0):
        assert faq.faq_index(site) is first
    hit = faq.best_faq(site, "what time do you open")
    assert (hit.question, hit.answer) == ("When do you open?", "At nine.")
    assert 0 < hit.confidence <= 1


def test_saving_or_deleting_an_entry_refits_this_process_at_once(site) -> None:
    faq.faq_index(site)
    entry = FaqEntry.objects.get(site=site, question="When do you open?")
    entry.answer = "At eight."
    entry.save()  # the post_save handler forgets this process's matcher
    assert site.pk not in faq._cache
    assert faq.best_faq(site, "what time do you open").answer == "At eight."
    entry.delete()
    assert site.pk not in faq._cache
    assert faq.best_faq(site, "what time do you open").question == "Do you deliver?"


def test_a_change_made_elsewhere_is_noticed_at_the_next_recheck(site, monkeypatch) -> None:
    first = faq.faq_index(site)
    # Another process's change: no signal reaches this one, only the FAQ's version moves.
    FaqEntry.objects.filter(site=site, question="Do you deliver?").update(
        active=False, updated_at=timezone.now()
    )
    assert faq.faq_index(site) is first  # within FAQ_RECHECK_SECONDS: not looked at yet
    monkeypatch.setattr(faq, "FAQ_RECHECK_SECONDS", 0.0)
    refitted = faq.faq_index(site)
    assert refitted is not first
    assert [question for question, _ in refitted.entries.values()] == ["When do you open?"]


def test_an_unchanged_faq_keeps_its_fitted_matcher_after_a_recheck(site, monkeypatch) -> None:
    first = faq.faq_index(site)
    monkeypatch.setattr(faq, "FAQ_RECHECK_SECONDS", 0.0)
    assert faq.faq_index(site).matcher is first.matcher


def test_a_site_without_entries_matches_nothing() -> None:
    assert faq.best_faq(Site.objects.create(name="Empty"), "anything?") is None
