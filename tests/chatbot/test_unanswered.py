"""A bot that knows what it doesn't know: the threshold calibrated on the site's own FAQ, honest
declines, and the managers' unanswered-questions list that turns a question into FAQ in one click."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from chatbot import bot, faq, intents, selectors, services
from chatbot.models import FaqEntry, Message, Resolution, Sender, Site
from demo.site import DEMO_FAQ, install_demo_site
from tests.factories import make_manager, make_user

pytestmark = pytest.mark.django_db

CRYPTO = "Can I pay with crypto for a rocket cake?"
DEMO_ENTRIES = [(i, [q, *variants]) for i, (q, variants, _answer) in enumerate(DEMO_FAQ)]


@pytest.fixture
def bakery(django_capture_on_commit_callbacks) -> Site:
    """The demo bakery with its FAQ, calibrated as after a real commit (the queued task runs)."""
    with django_capture_on_commit_callbacks(execute=True):
        site = install_demo_site()
    site.refresh_from_db()
    return site


def _ask(site: Site, text: str, conversation=None) -> tuple[Message, Message]:
    if conversation is None:
        conversation, _ = services.start_conversation(site=site)
    question, reply, *_ = services.post_visitor_message(conversation=conversation, text=text)
    question.refresh_from_db()
    return question, reply


def test_calibration_on_the_bakery_faq_declines_the_crypto_rocket_cake() -> None:
    calibration = intents.calibrate(DEMO_ENTRIES)
    assert calibration.calibrated
    assert calibration.in_scope > 50
    assert calibration.out_of_scope > 50
    matcher = intents.FaqMatcher(DEMO_ENTRIES)
    crypto = matcher.match(CRYPTO)
    assert crypto is not None
    assert crypto.confidence < calibration.threshold
    for in_scope in ("Can I pay by card?", "When do you open on Sunday", "do you do birthday cakes"):
        match = matcher.match(in_scope)
        assert match is not None
        assert match.confidence >= calibration.threshold, in_scope


def test_calibration_needs_enough_questions() -> None:
    tiny = intents.calibrate([(1, ["When do you open?"]), (2, ["Do you deliver?"])])
    assert not tiny.calibrated
    assert tiny.threshold == intents.DEFAULT_THRESHOLD


def test_coverage_does_not_change_the_best_entry() -> None:
    matcher = intents.FaqMatcher(DEMO_ENTRIES)
    questions = [CRYPTO, "Can I pay by card?", "do you ship cakes to Hamburg", "vegan croissant?"]
    scores = matcher.scores(questions)
    assert matcher.coverage("Can I pay by card?") == pytest.approx(1.0)
    assert matcher.coverage(CRYPTO) < 0.8
    assert matcher.predict(questions) == [matcher.match(q).entry_id for q in questions]  # type: ignore[union-attr]
    assert scores.shape == (4, len(DEMO_ENTRIES))


def test_the_bakery_site_stores_its_calibration_and_declines_crypto(bakery) -> None:
    assert bakery.faq_threshold_calibrated is not None
    assert bakery.answer_threshold == bakery.faq_threshold_calibrated
    assert bakery.faq_calibration["calibrated"] is True
    question, reply = _ask(bakery, CRYPTO)
    # The old bot answered "Yes! Custom cakes start at €35…" and counted it as answered.
    assert "€35" not in reply.text
    assert reply.text.startswith(bot.NOT_SURE)
    assert {a["type"] for a in reply.actions} >= {"handoff", "identify"}
    assert question.unanswered
    assert reply.faq_id is None
    _, answered = _ask(bakery, "Can I pay by card?")
    assert answered.faq_id is not None
    assert "Apple Pay" in answered.text


def test_a_manager_override_replaces_the_calibrated_threshold(bakery) -> None:
    faq.set_threshold(site=bakery, auto=False, threshold=0.05)
    bakery.refresh_from_db()
    assert bakery.answer_threshold == 0.05
    _, reply = _ask(bakery, CRYPTO)
    assert "€35" in reply.text  # the manager chose to let the bot guess


def test_an_faq_change_recalibrates_after_commit(bakery, django_capture_on_commit_callbacks) -> None:
    before = bakery.faq_calibration["version"]
    with django_capture_on_commit_callbacks(execute=True):
        FaqEntry.objects.create(
            site=bakery, question="Do you sell coffee beans?", variants="coffee to take home", answer="Yes."
        )
    bakery.refresh_from_db()
    assert bakery.faq_calibration["version"] != before
    assert faq.recalibrate(bakery.pk) is None  # already of the current FAQ: nothing to do


def test_thumbs_down_lands_in_the_list(bakery) -> None:
    conversation, _ = services.start_conversation(site=bakery)
    question, answer, *_ = services.post_visitor_message(conversation=conversation, text="Can I pay by card?")
    assert answer.faq_id is not None
    reply = services.record_feedback(conversation=conversation, message_id=answer.pk, helpful=False)
    assert {a["type"] for a in reply[0].actions} == {"handoff", "identify"}
    groups = selectors.unanswered_groups(bakery)
    assert [g["message"].pk for g in groups] == [question.pk]


@pytest.fixture
def manager_client() -> Client:
    client = Client()
    client.force_login(make_manager())
    return client


def test_one_click_variant_makes_the_bot_answer_next_time(bakery, manager_client) -> None:
    question, _ = _ask(bakery, CRYPTO)
    again, _ = _ask(bakery, "can i pay with crypto for a rocket cake")  # same group
    payments = FaqEntry.objects.get(site=bakery, question="Which payment methods do you accept?")
    page = manager_client.get(reverse("chatbot:unanswered_site", args=[bakery.pk]))
    assert page.status_code == 200
    assert CRYPTO in page.content.decode()
    assert "asked 2 times" in page.content.decode()
    response = manager_client.post(
        reverse("chatbot:unanswered_variant", args=[bakery.pk, question.pk]),
        {"entry": payments.pk},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert "Added" in response.content.decode()
    payments.refresh_from_db()
    assert CRYPTO in payments.variants.splitlines()
    assert set(
        Message.objects.filter(pk__in=[question.pk, again.pk]).values_list("resolution", flat=True)
    ) == {Resolution.VARIANT}
    _, reply = _ask(bakery, CRYPTO)
    assert reply.faq_id == payments.pk


def test_one_click_new_entry_with_its_answer(bakery, manager_client) -> None:
    question, _ = _ask(bakery, "Do you sell sourdough starter?")
    url = reverse("chatbot:unanswered_entry", args=[bakery.pk, question.pk])
    form = manager_client.get(url, HTTP_HX_REQUEST="true")
    assert form.status_code == 200
    assert 'value="Do you sell sourdough starter?"' in form.content.decode()
    blank = manager_client.post(url, {"question": "Do you sell sourdough starter?", "answer": " "})
    assert blank.status_code == 400
    assert "This field cannot be blank." in blank.content.decode()
    saved = manager_client.post(
        url,
        {"question": "Do you sell sourdough starter?", "answer": "Yes, €4 a jar."},
        HTTP_HX_REQUEST="true",
    )
    assert saved.status_code == 200
    entry = FaqEntry.objects.get(site=bakery, question="Do you sell sourdough starter?")
    _, reply = _ask(bakery, "Do you sell sourdough starter?")
    assert reply.faq_id == entry.pk
    assert reply.text == "Yes, €4 a jar."


def test_dismiss_takes_it_off_the_list_and_reports_count_honestly(bakery, manager_client) -> None:
    question, _ = _ask(bakery, CRYPTO)
    report = manager_client.get(reverse("chatbot:reports")).content.decode()
    assert "No unanswered questions yet" not in report
    response = manager_client.post(reverse("chatbot:unanswered_dismiss", args=[bakery.pk, question.pk]))
    assert response.status_code == 302
    question.refresh_from_db()
    assert question.resolution == Resolution.DISMISSED
    counts = selectors.unanswered_counts()
    assert [(c["total"], c["open"], c["dismissed"]) for c in counts] == [(1, 0, 1)]


def test_salespeople_cannot_see_or_act(bakery) -> None:
    question, _ = _ask(bakery, CRYPTO)
    client = Client()
    client.force_login(make_user())
    assert client.get(reverse("chatbot:unanswered_site", args=[bakery.pk])).status_code == 403
    assert (
        client.post(reverse("chatbot:unanswered_dismiss", args=[bakery.pk, question.pk])).status_code == 403
    )
    anonymous = Client().get(reverse("chatbot:unanswered_site", args=[bakery.pk]))
    assert anonymous.status_code == 302
    question.refresh_from_db()
    assert question.resolution == Resolution.OPEN


def test_another_sites_question_or_entry_is_not_reachable(bakery, manager_client) -> None:
    question, _ = _ask(bakery, CRYPTO)
    other = Site.objects.create(name="Consultancy")
    theirs = FaqEntry.objects.create(site=other, question="What do you charge?", answer="€100 an hour.")
    wrong_site = manager_client.post(reverse("chatbot:unanswered_dismiss", args=[other.pk, question.pk]))
    assert wrong_site.status_code == 404
    wrong_entry = manager_client.post(
        reverse("chatbot:unanswered_variant", args=[bakery.pk, question.pk]), {"entry": theirs.pk}
    )
    assert wrong_entry.status_code == 400
    theirs.refresh_from_db()
    assert theirs.variants == ""
    question.refresh_from_db()
    assert question.resolution == Resolution.OPEN
    not_a_question = Message.objects.filter(sender=Sender.BOT).first()
    assert not_a_question is not None
    response = manager_client.post(reverse("chatbot:unanswered_dismiss", args=[bakery.pk, not_a_question.pk]))
    assert response.status_code == 404


def test_threshold_override_form_rejects_bad_input(bakery, manager_client) -> None:
    url = reverse("chatbot:faq_threshold", args=[bakery.pk])
    bad = manager_client.post(url, {"mode": "manual", "threshold": "2"})
    assert bad.status_code == 400
    assert "less than or equal to 1" in bad.content.decode()
    ok = manager_client.post(url, {"mode": "manual", "threshold": "0.5"})
    assert ok.status_code == 302
    bakery.refresh_from_db()
    assert not bakery.faq_threshold_auto
    assert bakery.answer_threshold == 0.5
