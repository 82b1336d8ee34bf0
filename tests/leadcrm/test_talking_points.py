"""The suggested next step and talking points: pure rules, tested without a database.

Without explicit rules the engine uses the B2B software playbook (tests/leadcrm/test_playbook.py
covers the other playbooks and the editing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadcrm.playbook_rules import DEFAULTS
from leadcrm.talking_points import (
    LeadFacts,
    Touch,
    advise,
    interests,
    last_conversation,
    next_step,
    talking_points,
)

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday


def chat(text: str, minutes_ago: float, sentiment: float | None = None, sender: str = "visitor") -> Touch:
    return Touch(
        "chat_message", NOW - timedelta(minutes=minutes_ago), {"text": text, "from": sender}, sentiment
    )


def view(url: str, days_ago: float = 1) -> Touch:
    return Touch("page_view", NOW - timedelta(days=days_ago), {"url": url})


def texts(points) -> list[str]:
    return [p.text for p in points]


def test_asking_about_pricing_twice_in_chat_suggests_the_annual_plan_comparison() -> None:
    facts = LeadFacts(
        touches=[chat("What does the annual plan cost?", 5), chat("Is there a discount on pricing?", 4)]
    )
    points = texts(talking_points(facts, now=NOW))
    assert "Asked about pricing — offer the annual plan comparison." in points
    step = next_step(facts, now=NOW)
    assert step.text.startswith("Send the annual plan comparison")
    assert step.because == "Wrote “annual plan”, “discount” in chat (2 messages)."


def test_the_bots_replies_do_not_count_as_the_visitors_interest() -> None:
    facts = LeadFacts(touches=[chat("Our pricing starts at 49 €.", 5, sender="bot")])
    assert not any("pricing" in t for t in texts(talking_points(facts, now=NOW)))


def test_frustration_in_the_last_chat_comes_first_and_changes_the_next_step() -> None:
    old_happy = chat("Great, thanks!", 60 * 24 * 3, 0.8)
    last = [chat("I waited ages, really annoying.", 10, -0.7), chat("The form keeps failing.", 9, -0.5)]
    facts = LeadFacts(touches=[old_happy, *last], phone="+49 30 1234")
    points = talking_points(facts, now=NOW)
    assert points[0].text == "Frustrated in last chat — acknowledge that first."
    assert points[0].tone == "warning"
    assert next_step(facts, now=NOW).text.startswith("Call to acknowledge the frustration")
    # only the last conversation counts: an old happy chat does not dilute it
    assert len(last_conversation(facts.touches)) == 2


def test_downloads_and_case_studies_become_talking_points() -> None:
    facts = LeadFacts(
        touches=[
            Touch("content_download", NOW - timedelta(days=2), {"title": "Retail case study"}),
            view("/case-studies/retail"),
        ]
    )
    points = texts(talking_points(facts, now=NOW))
    advice = advise(facts, now=NOW)
    assert "Downloaded content — refer to it." in points
    assert "Read a case study — bring up a similar customer." in points
    why = {p.text: p.because for p in advice.talking_points}
    assert why["Downloaded content — refer to it."] == "Downloaded “Retail case study”."
    assert why["Read a case study — bring up a similar customer."] == (
        "Viewed /case-studies/retail once in the last 14 days."
    )


def test_pricing_page_views_count_only_within_two_weeks() -> None:
    recent = LeadFacts(touches=[view("/pricing", 1), view("/pricing", 3)])
    stale = LeadFacts(touches=[view("/pricing", 20), view("/pricing", 30)])
    points = talking_points(recent, now=NOW)
    assert [(p.text, p.because) for p in points] == [
        (
            "Viewed the pricing page — offer the annual plan comparison.",
            "Viewed /pricing twice in the last 14 days.",
        )
    ]
    assert not any("pricing page" in t for t in texts(talking_points(stale, now=NOW)))


def test_next_step_policy_order() -> None:
    assert next_step(LeadFacts(status="won"), now=NOW).text.startswith("Hand over to onboarding")
    lost = next_step(LeadFacts(status="lost", lost_reason="Price too high"), now=NOW)
    assert "Price too high" in lost.because
    # live chat beats an overdue follow-up, which beats everything else
    assert (
        next_step(LeadFacts(live_now=True, overdue_follow_ups=1), now=NOW).text == "Join the live chat now."
    )
    assert next_step(LeadFacts(overdue_follow_ups=2), now=NOW).text == "Do the overdue follow-up first."
    # a demo request → book it (the software playbook's rule)
    demo = LeadFacts(touches=[chat("Can we get a demo next week?", 30)])
    assert next_step(demo, now=NOW).text == "Book a demo."
    assert next_step(LeadFacts(status="new", phone="123"), now=NOW).text == "Make a first call."
    assert next_step(LeadFacts(status="new", email="a@b.c"), now=NOW).text.startswith(
        "Send a short personal intro"
    )
    quiet = LeadFacts(status="working", touches=[view("/", 45)])
    assert next_step(quiet, now=NOW).because == "No activity for 45 days."


def test_unsubscribed_leads_are_not_sent_to_email() -> None:
    facts = LeadFacts(status="new", email="a@b.c", touches=[Touch("unsubscribe", NOW - timedelta(days=1))])
    assert "email" not in next_step(facts, now=NOW).text.lower()
    assert any("Unsubscribed" in t for t in texts(talking_points(facts, now=NOW)))


def test_local_time_says_whether_to_call() -> None:
    day = talking_points(LeadFacts(timezone="Europe/Berlin"), now=NOW)  # 11:00 in Berlin
    night = talking_points(LeadFacts(timezone="Pacific/Auckland"), now=NOW)  # 23:00 in Auckland
    assert day[-1].text.endswith("a fine time to call.")
    assert "outside business hours" in night[-1].text
    assert talking_points(LeadFacts(timezone="Not/AZone"), now=NOW) == []


def test_interests_collect_topics_pages_and_downloads() -> None:
    touches = [
        chat("Does it integrate with our shop system?", 3),
        chat("And how many users are included?", 2),
        view("/pricing"),
        view("/pricing"),
        view("/features"),
        Touch("content_download", NOW - timedelta(days=1), {"title": "Pricing comparison sheet"}),
    ]
    found = interests(touches, DEFAULTS["software"])
    assert ("integration", 1) in found.chat_topics  # named by the rule's first word
    assert ("seats", 1) in found.chat_topics
    assert found.pages[0] == ("/pricing", 2)
    assert found.downloads == ["Pricing comparison sheet"]


def test_advice_on_an_empty_lead_is_still_useful() -> None:
    advice = advise(LeadFacts(status="working"), now=NOW)
    assert advice.next_step.text == "Check in with something useful to them."
    assert advice.talking_points == []


def test_no_intro_email_suggested_once_one_was_sent() -> None:
    sent = LeadFacts(status="new", email="a@b.c", touches=[Touch("email_sent", NOW - timedelta(hours=2))])
    assert not next_step(sent, now=NOW).text.startswith("Send a short personal intro")
