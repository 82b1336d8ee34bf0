"""The outreacher pages over HTTP: the queue, the lead panel, outcomes, follow-ups, reports."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from leadcrm import playbook
from leadcrm.models import FollowUp, Interaction, InteractionKind, Lead
from tests.factories import make_follow_up, make_interaction, make_lead, make_segment

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
QUEUE = reverse("leadcrm:queue")


@pytest.fixture
def seller_client(client, salesperson):
    client.force_login(salesperson)
    return client


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


def test_pages_need_a_login(client) -> None:
    response = client.get(QUEUE)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("n_leads", [3, 40])
def test_queue_runs_the_same_few_queries_whatever_the_page_size(
    manager_client, salesperson, django_assert_num_queries, n_leads
) -> None:
    make_segment()
    for i in range(n_leads):
        make_lead(
            priority=i,
            owner=salesperson if i % 2 else None,
            score_breakdown=[{"rule": "r", "points": i, "reason": "x"}],
        )
    # session, user, groups, the leads page (the table alone needs no segment/owner lists)
    with django_assert_num_queries(4):
        response = manager_client.get(QUEUE, **HX)
    assert response.status_code == 200
    assert response.content.decode().count('class="lead-name"') == n_leads
    # the whole page adds the segments and owners for the selects, and the "due today" count
    # The whole page adds the nav's reads: segments, due counts, and the user's staff profile (on
    # duty, alert opt-ins: one row, shared by the toggle and the alerts menu).
    with django_assert_num_queries(8):
        assert manager_client.get(QUEUE).status_code == 200


def test_lead_panel_runs_a_fixed_handful_of_queries(
    seller_client, salesperson, django_assert_num_queries
) -> None:
    lead = make_lead(owner=salesperson)
    make_segment()
    make_follow_up(lead)
    for _ in range(3):
        make_interaction(lead, "chat_message", payload={"text": "Pricing?"}, sentiment=0.3)
    # session, user, groups, lead, interactions, score history, segments, follow-ups, the playbook's
    # version (one row; its rules are kept per process), the audit trail's "viewed" row (at most
    # one per person, lead and 5 minutes), and the sequence card (the lead's enrolments, the
    # sequences it may join)
    with django_assert_num_queries(12):
        response = seller_client.get(reverse("leadcrm:lead", args=[lead.pk]), **HX)
    assert response.status_code == 200
    assert "Chat message (3)" in response.content.decode()


def test_salesperson_queue_shows_own_and_unassigned_rows_with_claim(
    seller_client, salesperson, other_salesperson
) -> None:
    mine = make_lead(first_name="Mine", priority=3, owner=salesperson)
    free = make_lead(
        first_name="Free",
        priority=2,
        grade="A2",
        ml_probability=0.42,
        live_until=timezone.now() + timedelta(minutes=1),
    )
    make_lead(first_name="Theirs", priority=9, owner=other_salesperson)
    html = seller_client.get(QUEUE).content.decode()
    assert mine.display_name in html
    assert free.display_name in html
    assert "Theirs" not in html
    assert html.index(mine.display_name) < html.index(free.display_name)
    assert "Live now" in html
    assert "42%" in html
    assert ">A2<" in html
    assert reverse("leadcrm:claim", args=[free.pk]) in html
    assert reverse("leadcrm:claim", args=[mine.pk]) not in html


def test_unknown_filter_values_get_a_clear_message_not_a_500(seller_client) -> None:
    make_lead(first_name="Still", grade="A1")
    response = seller_client.get(
        QUEUE, {"grade": "Z9", "status": "maybe", "segment": "999", "sort": "chaos", "page": "x"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Unknown grade &#x27;Z9&#x27;" in html
    assert "Use one of: A, A1" in html
    assert "Unknown status &#x27;maybe&#x27;" in html
    assert "Unknown segment &#x27;999&#x27;" in html
    assert "Still" in html  # the valid part of the page still works
    # the htmx table answers the same way
    assert seller_client.get(QUEUE, {"grade": "Z9"}, **HX).status_code == 400


def test_filters_and_search_narrow_the_table(seller_client) -> None:
    make_lead(first_name="Anna", company_name="Retail Co", grade="A1", source="chat")
    make_lead(first_name="Bert", company_name="Steel Works", grade="C3", source="referral")
    html = seller_client.get(QUEUE, {"grade": "A"}, **HX).content.decode()
    assert "Anna" in html
    assert "Bert" not in html
    html = seller_client.get(QUEUE, {"q": "steel"}, **HX).content.decode()
    assert "Bert" in html
    assert "Anna" not in html
    html = seller_client.get(QUEUE, {"source": "chat", "unassigned": "on"}, **HX).content.decode()
    assert "Anna" in html
    assert "Bert" not in html
    assert 'id="queue-table"' in html
    assert "<html" not in html
    html = seller_client.get(QUEUE, {"q": "nobody-like-this"}, **HX).content.decode()
    assert "No leads match these filters" in html


def test_lead_panel_for_htmx_and_whole_page_for_a_direct_visit(seller_client, salesperson) -> None:
    lead = make_lead(
        owner=salesperson,
        job_title="CEO",
        score_breakdown=[{"rule": "title", "points": 15, "reason": "Decision maker"}],
    )
    make_interaction(lead, "chat_message", payload={"text": "Pricing for 10 users?"}, sentiment=0.1)
    playbook.apply_defaults(kind="software")
    url = reverse("leadcrm:lead", args=[lead.pk])
    panel = seller_client.get(url, **HX)
    assert panel.status_code == 200
    html = panel.content.decode()
    assert "<html" not in html
    assert "Suggested next step" in html
    assert "Decision maker" in html
    assert "Asked about pricing — offer the annual plan comparison." in html
    page = seller_client.get(url).content.decode()
    assert "<html" in page
    assert 'id="queue-table"' in page
    assert lead.display_name in page


def test_a_lead_the_role_rule_hides_answers_404_everywhere(seller_client, other_salesperson) -> None:
    lead = make_lead(owner=other_salesperson)
    follow_up = make_follow_up(lead)
    for name in ("lead", "lead_timeline"):
        assert seller_client.get(reverse(f"leadcrm:{name}", args=[lead.pk])).status_code == 404
    for name in ("claim", "log_outcome", "add_follow_up"):
        assert (
            seller_client.post(reverse(f"leadcrm:{name}", args=[lead.pk]), {"kind": "call"}).status_code
            == 404
        )
    assert seller_client.post(reverse("leadcrm:complete_follow_up", args=[follow_up.pk])).status_code == 404
    assert Interaction.objects.count() == 0
    assert Lead.objects.get(pk=lead.pk).owner == other_salesperson


def test_claiming_assigns_the_lead_and_refreshes_the_queue(
    seller_client, salesperson, other_salesperson
) -> None:
    lead = make_lead()
    response = seller_client.post(reverse("leadcrm:claim", args=[lead.pk]), HTTP_HX_TARGET="lead-panel", **HX)
    assert response.status_code == 200
    assert response["HX-Trigger"] == "queue-changed"
    assert "is yours now" in response.content.decode()
    assert Lead.objects.get(pk=lead.pk).owner == salesperson


def test_claiming_a_lead_someone_owns_is_a_clear_conflict(manager_client, other_salesperson) -> None:
    lead = make_lead(owner=other_salesperson)
    response = manager_client.post(
        reverse("leadcrm:claim", args=[lead.pk]), HTTP_HX_TARGET="lead-panel", **HX
    )
    assert response.status_code == 409
    assert "already has an owner" in response.content.decode()
    assert Lead.objects.get(pk=lead.pk).owner == other_salesperson


def test_outcome_on_an_unclaimed_lead_says_claim_first(seller_client) -> None:
    lead = make_lead()
    response = seller_client.post(
        reverse("leadcrm:log_outcome", args=[lead.pk]), {"kind": "call", "notes": "hi"}, **HX
    )
    assert response.status_code == 403
    assert "Claim this lead before logging outcomes" in response.content.decode()
    assert not Interaction.objects.filter(lead=lead).exists()


def test_logging_a_call_and_winning_records_both_and_triggers_the_queue(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson, status="working")
    response = seller_client.post(
        reverse("leadcrm:log_outcome", args=[lead.pk]),
        {"kind": "call", "notes": "Signed!", "duration_min": "12", "status": "won"},
        **HX,
    )
    assert response.status_code == 200
    assert response["HX-Trigger"] == "queue-changed"
    lead.refresh_from_db()
    assert lead.status == "won"
    assert lead.closed_at is not None
    call = Interaction.objects.get(lead=lead, kind=InteractionKind.CALL)
    assert call.payload["duration_s"] == 720
    assert call.logged_by == salesperson
    assert Interaction.objects.filter(lead=lead, kind=InteractionKind.NOTE, payload__status_to="won").exists()
    # the won lead leaves the open queue
    assert lead.display_name not in seller_client.get(QUEUE, **HX).content.decode()


def test_lost_needs_a_reason_and_bad_outcomes_are_form_errors(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    url = reverse("leadcrm:log_outcome", args=[lead.pk])
    response = seller_client.post(url, {"kind": "call", "status": "lost"}, **HX)
    assert response.status_code == 400
    assert "Say why the lead was lost." in response.content.decode()
    response = seller_client.post(url, {"kind": "telepathy"}, **HX)
    assert response.status_code == 400
    assert "Unknown outcome &#x27;telepathy&#x27;" in response.content.decode()
    response = seller_client.post(url, {"kind": "note", "notes": ""}, **HX)
    assert response.status_code == 400
    assert "nothing to log" in response.content.decode()
    assert Lead.objects.get(pk=lead.pk).status == "new"
    assert not Interaction.objects.filter(lead=lead).exists()


def test_follow_up_in_the_past_is_refused_with_a_message(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    url = reverse("leadcrm:add_follow_up", args=[lead.pk])
    past = (timezone.localtime() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = seller_client.post(url, {"due_at": past, "note": "call"}, **HX)
    assert response.status_code == 400
    assert "cannot be due in the past" in response.content.decode()
    response = seller_client.post(url, {"due_at": "not a date"}, **HX)
    assert response.status_code == 400
    assert not FollowUp.objects.exists()

    future = (timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = seller_client.post(url, {"due_at": future, "note": "Send proposal"}, **HX)
    assert response.status_code == 200
    assert "Send proposal" in response.content.decode()
    follow_up = FollowUp.objects.get()
    assert follow_up.assigned_to == salesperson

    done = seller_client.post(
        reverse("leadcrm:complete_follow_up", args=[follow_up.pk]), HTTP_HX_TARGET="lead-panel", **HX
    )
    assert done.status_code == 200
    assert FollowUp.objects.get().done_at is not None


def test_follow_ups_page_lists_due_today_and_the_nav_badge_counts_them(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson, first_name="Dora")
    make_follow_up(
        lead, assigned_to=salesperson, due_at=timezone.now() - timedelta(minutes=5), note="Overdue call"
    )
    html = seller_client.get(reverse("leadcrm:follow_ups")).content.decode()
    assert "Overdue call" in html
    assert "Dora" in html
    badge = seller_client.get(reverse("leadcrm:due_badge")).content.decode()
    # Overdue is not "due today" (issue 16, item 7): the badge says which is which.
    assert '1<span class="visually-hidden"> overdue</span>' in badge
    assert "due later today" not in badge


def test_timeline_filters_by_kind_and_rejects_unknown_kinds(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    make_interaction(lead, "page_view", payload={"url": "/pricing"})
    make_interaction(lead, "chat_message", payload={"text": "hello there"})
    url = reverse("leadcrm:lead_timeline", args=[lead.pk])
    html = seller_client.get(url, {"kind": "chat_message"}, **HX).content.decode()
    assert "hello there" in html
    assert "/pricing" not in html
    response = seller_client.get(url, {"kind": "smoke_signal"}, **HX)
    assert response.status_code == 400
    assert "Unknown interaction kind" in response.content.decode()


def test_live_conversation_panel_is_loaded_only_when_the_chat_app_serves_it(
    seller_client, salesperson, monkeypatch
) -> None:
    from leadcrm import views

    lead = make_lead(owner=salesperson, live_until=timezone.now() + timedelta(minutes=1))
    url = reverse("leadcrm:lead", args=[lead.pk])
    monkeypatch.setattr(views, "live_panel_url", lambda lead_id: f"/chat/panel/{lead_id}/")
    html = seller_client.get(url, **HX).content.decode()
    assert f'hx-get="/chat/panel/{lead.pk}/"' in html
    assert "Join the live chat now." in html
    monkeypatch.setattr(views, "live_panel_url", lambda lead_id: None)
    assert "Live conversation" not in seller_client.get(url, **HX).content.decode()


def test_the_lead_panel_links_the_chat_agent_panel_by_url_name() -> None:
    from leadcrm.views import live_panel_url

    assert live_panel_url(1) == reverse("chatbot:agent_panel", kwargs={"lead_id": 1})


def test_reports_are_for_managers(seller_client, client, manager) -> None:
    from django.core.cache import cache

    from scoring.models import ScoreSnapshot

    cache.clear()  # reports are cached for two minutes
    won = make_lead(status="won", source="referral", grade="A1", closed_at=timezone.now())
    # Closed leads rank by their score before the outcome (issue 16): one was taken.
    ScoreSnapshot.objects.create(
        lead=won, taken_at=won.closed_at - timedelta(days=1), grade="A1", rule_score=80
    )
    assert seller_client.get(reverse("leadcrm:reports")).status_code == 403
    client.force_login(manager)
    response = client.get(reverse("leadcrm:reports"), {"period": "all"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Conversion by lead source" in html
    assert "Referral" in html
    assert "Decile 1" in html
    assert client.get(reverse("leadcrm:reports"), {"period": "forever"}).status_code == 400


def test_home_lands_with_counts_and_the_top_of_the_queue(seller_client, salesperson) -> None:
    make_lead(first_name="Top", priority=99)
    html = seller_client.get(reverse("home")).content.decode()
    assert "Who to talk to next" in html
    assert "Top" in html
    assert reverse("leadcrm:queue") in html


def test_home_lists_the_first_ten_follow_ups_due_and_links_to_the_rest(seller_client, salesperson) -> None:
    lead = make_lead(owner=salesperson)
    now = timezone.now()
    for i in range(12):
        make_follow_up(lead, assigned_to=salesperson, due_at=now - timedelta(hours=12 - i), note=f"Call #{i}")
    html = seller_client.get(reverse("home")).content.decode()
    assert "Follow-ups overdue and due today" in html
    assert [int(n) for n in re.findall(r"Call #(\d+)", html)] == list(range(10))  # oldest first
    assert "2 more due — see all follow-ups" in html
    assert reverse("leadcrm:follow_ups") in html


def test_timeline_pages_back_with_before(seller_client, salesperson) -> None:
    from leadcrm.selectors import TIMELINE_LIMIT

    lead = make_lead(owner=salesperson)
    start = timezone.now() - timedelta(days=10)
    for i in range(TIMELINE_LIMIT + 5):
        make_interaction(
            lead, "page_view", payload={"url": f"/page-{i}"}, occurred_at=start + timedelta(minutes=i)
        )
    url = reverse("leadcrm:lead_timeline", args=[lead.pk])
    first = seller_client.get(url, **HX).content.decode()
    assert f"/page-{TIMELINE_LIMIT + 4}" in first
    assert not re.search(r"/page-0\s", first)
    older = re.search(r'href="([^"]*before=[^"]*)"', first).group(1).replace("&amp;", "&")
    second = seller_client.get(older, **HX).content.decode()
    assert re.search(r"/page-0\s", second)
    assert f"/page-{TIMELINE_LIMIT + 4}" not in second
    assert "Back to newest" in second


def test_queue_rows_escape_what_leads_typed(seller_client) -> None:
    make_lead(
        first_name='<img src=x onerror="alert(1)">',
        company_name="<script>alert(2)</script>",
        score_breakdown=[{"rule": "r", "points": 5, "reason": "<b>bold</b>"}],
    )
    html = seller_client.get(QUEUE, **HX).content.decode()
    assert "<img src=x" not in html
    assert "<script>alert(2)" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; (+5)" in html


def test_a_lead_named_like_a_script_renders_escaped_on_every_page(seller_client) -> None:
    hostile = "<script>alert(1)</script>"
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    lead = make_lead(first_name=hostile, last_name="", company_name=hostile)
    make_interaction(lead, "chat_message", payload={"text": hostile}, sentiment=0.2)
    make_segment(name=hostile)  # an option of the queue's segment filter
    lead_url = reverse("leadcrm:lead", args=[lead.pk])
    pages = {
        "queue": seller_client.get(QUEUE).content.decode(),
        "queue table": seller_client.get(QUEUE, {"q": "script"}, **HX).content.decode(),
        "panel": seller_client.get(lead_url, **HX).content.decode(),
        "lead page": seller_client.get(lead_url).content.decode(),
        "timeline": seller_client.get(
            reverse("leadcrm:lead_timeline", args=[lead.pk]), **HX
        ).content.decode(),
    }
    for name, html in pages.items():
        assert "<script>alert" not in html, name
    assert f">{escaped}</a>" in pages["queue table"]  # the row's name link
    assert f'aria-label="Claim {escaped}"' in pages["queue table"]
    assert f">{escaped}</option>" in pages["queue"]
    assert f'<h2 id="lead-heading" tabindex="-1">{escaped}</h2>' in pages["panel"]
    assert f"<title>{escaped} · Queue · LeadCRM</title>" in pages["lead page"]
    assert f"<strong>Chat message</strong> — {escaped}" in pages["timeline"]


def test_an_empty_queue_says_why_and_links_back_to_the_whole_queue(seller_client) -> None:
    html = seller_client.get(QUEUE, **HX).content.decode()
    assert "No leads yet. New leads appear here as they arrive" in html
    html = seller_client.get(QUEUE, {"grade": "A"}, **HX).content.decode()
    assert f'No leads match these filters. <a href="{QUEUE}">Show the whole queue</a>' in html


def test_filter_selects_keep_the_chosen_values(seller_client) -> None:
    html = seller_client.get(QUEUE).content.decode()
    assert '<option value="priority" selected>Priority</option>' in html  # the default sort
    html = seller_client.get(QUEUE, {"grade": "A", "sort": "name", "status": "all"}).content.decode()
    assert '<option value="A" selected>A (any engagement)</option>' in html
    assert '<option value="name" selected>Name</option>' in html
    assert '<option value="all" selected>All statuses</option>' in html
    assert html.count(" selected>") == 5  # grade, segment (any), source (any), status, sort
