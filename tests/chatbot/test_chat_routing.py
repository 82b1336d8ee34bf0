"""Chat routing (docs/chat.md#routing): a hand-off goes to the right person, is offered to everyone
and escalated to the managers while unanswered; the chat's callback promise always has an owner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chatbot import escalation, services
from chatbot.models import Conversation
from demo.site import install_demo_site
from leadcrm import realtime as delivery
from leadcrm import services as crm
from leadcrm.alerts import ALL_GROUP, MANAGERS_GROUP, user_group
from leadcrm.models import FollowUp
from tests.factories import make_lead, make_manager, make_user

pytestmark = pytest.mark.django_db

ALWAYS_OPEN = {d: [["00:00", "00:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
NEVER_OPEN: dict[str, list] = {}


@pytest.fixture
def site():
    site = install_demo_site()
    site.business_hours = ALWAYS_OPEN
    site.handoff_owner = None
    site.save()
    return site


@pytest.fixture
def alerts(monkeypatch) -> list[tuple[tuple[str, ...], dict]]:
    """Staff alerts sent (after commit), as (groups, event)."""
    calls: list[tuple[tuple[str, ...], dict]] = []

    def record(groups, *events):
        calls.extend((tuple(groups), e) for e in events if e.get("type") == "staff.alert")

    monkeypatch.setattr(delivery, "send_now", record)
    return calls


def on_duty(user, *, ago: int = 60):
    crm.set_on_duty(user=user, on_duty=True, now=timezone.now() - timedelta(minutes=ago))
    return user


def hand_off(site, lead=None, *, visitor: str = "visitor-route-0001", now=None):
    conversation, _ = services.start_conversation(site=site, visitor_id=visitor)
    if lead is not None:
        Conversation.objects.filter(pk=conversation.pk).update(lead=lead)
        conversation.refresh_from_db()
    services.request_handoff(conversation=conversation, now=now)
    conversation.refresh_from_db()
    return conversation


def test_a_hand_off_goes_to_the_owner_on_duty_and_alerts_them(
    site, alerts, django_capture_on_commit_callbacks
) -> None:
    owner = on_duty(make_user("owner"))
    on_duty(make_user("other"), ago=120)
    with django_capture_on_commit_callbacks(execute=True):
        conversation = hand_off(site, make_lead(owner=owner))
    assert conversation.status == "waiting"
    assert conversation.routed_to == owner
    assert conversation.routed_at is not None
    waiting = [(g, e) for g, e in alerts if e["kind"] == "chat.waiting"]
    assert waiting == [((user_group(owner.pk),), waiting[0][1])]
    assert waiting[0][1]["routed_to"] == owner.pk


def test_hand_offs_without_an_owner_on_duty_go_round_robin(site) -> None:
    ann = on_duty(make_user("ann"), ago=120)
    bob = on_duty(make_user("bob"), ago=60)
    off = make_user("off")  # the owner, off duty
    chats = [hand_off(site, make_lead(owner=off), visitor=f"visitor-rr-000{i}") for i in range(3)]
    assert [c.routed_to for c in chats] == [ann, bob, ann]


def test_nobody_on_duty_alerts_every_staff_page(site, alerts, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        conversation = hand_off(site, make_lead())
    assert conversation.routed_to is None
    assert [g for g, e in alerts if e["kind"] == "chat.waiting"] == [(ALL_GROUP,)]


def test_unanswered_it_is_offered_to_everyone_then_escalated_once_each(
    site, alerts, settings, django_capture_on_commit_callbacks
) -> None:
    settings.CHAT_OFFER_ALL_AFTER_S, settings.CHAT_ESCALATE_AFTER_S = 60, 180
    sam = on_duty(make_user("sam"))
    make_manager("boss")
    conversation = hand_off(site, make_lead())
    start = conversation.routed_at

    def sweep(after_s: float) -> tuple[int, int]:
        with django_capture_on_commit_callbacks(execute=True):
            return escalation.advance_waiting_chats(now=start + timedelta(seconds=after_s))

    assert sweep(59) == (0, 0)
    assert sweep(61) == (1, 0)
    assert sweep(62) == (0, 0)  # once: a countdown task and the sweep together alert once
    assert sweep(181) == (0, 1)
    assert sweep(500) == (0, 0)
    kinds = [(e["kind"], g) for g, e in alerts]
    assert kinds == [("chat.offered", (ALL_GROUP,)), ("chat.escalated", (user_group(sam.pk), MANAGERS_GROUP))]
    conversation.refresh_from_db()
    assert conversation.offered_at == start + timedelta(seconds=61)
    assert conversation.escalated_at == start + timedelta(seconds=181)


def test_an_answered_chat_is_neither_offered_nor_escalated(site, alerts) -> None:
    sam = on_duty(make_user("sam"))
    conversation = hand_off(site, make_lead())
    services.take_over(conversation=conversation, user=sam)
    later = conversation.routed_at + timedelta(hours=1)
    assert escalation.advance_waiting_chats(now=later) == (0, 0)


def test_the_countdown_task_advances_only_its_own_chat(site) -> None:
    from chatbot.tasks import advance_waiting_chat

    on_duty(make_user("sam"))
    first = hand_off(site, make_lead(), visitor="visitor-cd-0001")
    second = hand_off(site, make_lead(), visitor="visitor-cd-0002")
    Conversation.objects.filter(pk__in=[first.pk, second.pk]).update(
        routed_at=timezone.now() - timedelta(seconds=120)
    )
    assert advance_waiting_chat(first.pk) == (1, 0)
    second.refresh_from_db()
    assert second.offered_at is None


def test_a_new_wait_starts_a_new_clock(site) -> None:
    on_duty(make_user("sam"))
    conversation = hand_off(site, make_lead())
    escalation.advance_waiting_chats(now=conversation.routed_at + timedelta(hours=1))
    services.close_conversation(conversation=conversation)
    services.request_handoff(conversation=conversation)  # the visitor asks again on the same chat
    conversation.refresh_from_db()
    assert conversation.status == "waiting"
    assert (conversation.offered_at, conversation.escalated_at) == (None, None)


def test_the_live_chats_inbox_shows_who_it_was_routed_to(site, client) -> None:
    sam = on_duty(make_user("sam", first_name="Sam"))
    hand_off(site, make_lead(first_name="Grace"))
    client.force_login(sam)
    page = client.get("/chat/").content.decode()
    assert "Routed to you" in page
    boss = make_manager("boss")
    client.force_login(boss)
    assert "Routed to Sam" in client.get("/chat/").content.decode()


# --- The chat's callback promise -------------------------------------------------------------------


def out_of_hours_conversation(site):
    site.business_hours = NEVER_OPEN | {"mon": [["09:00", "17:00"]]}
    site.save()
    conversation, _ = services.start_conversation(site=site, visitor_id="visitor-cb-00001")
    services.identify_visitor(
        conversation=conversation, name="Grace Hopper", email="grace@example.com", contact_consent=True
    )
    conversation.refresh_from_db()
    return conversation


def test_a_callback_promised_by_the_bot_always_has_an_owner_and_the_visitor_hears_who(site) -> None:
    # The bug: no lead owner and no site hand-off person made a follow-up nobody owned or saw.
    boss = make_manager("boss", first_name="Maria")
    conversation = out_of_hours_conversation(site)
    assert conversation.lead.owner is None
    assert site.handoff_owner is None
    due = timezone.now() + timedelta(days=2)
    follow_up = services.schedule_callback(conversation=conversation, due_at=due)
    assert follow_up.assigned_to == boss
    last = conversation.messages.order_by("-id").first()
    assert last.text.startswith("Done: Maria from our team will call you back ")


def test_the_callback_goes_to_someone_on_duty_before_the_sites_hand_off_person(site) -> None:
    desk = make_user("desk")
    site.handoff_owner = desk
    site.save()
    conversation = out_of_hours_conversation(site)
    due = timezone.now() + timedelta(days=1)
    assert services.schedule_callback(conversation=conversation, due_at=due).assigned_to == desk
    FollowUp.objects.all().delete()
    sam = on_duty(make_user("sam"))
    assert services.schedule_callback(conversation=conversation, due_at=due).assigned_to == sam


def test_whoever_a_chat_on_someone_elses_lead_is_routed_or_offered_to_may_open_it(site, client) -> None:
    owner = make_user("owner")  # off duty: the chat goes to bob
    bob = on_duty(make_user("bob"), ago=120)
    cat = on_duty(make_user("cat"), ago=60)
    lead = make_lead(owner=owner, first_name="Grace")
    conversation = hand_off(site, lead)
    assert conversation.routed_to == bob
    panel = f"/chat/leads/{lead.pk}/panel/"

    def sees(user) -> tuple[int, bool]:
        client.force_login(user)
        return client.get(panel).status_code, "Grace" in client.get("/chat/").content.decode()

    assert sees(bob) == (200, True)
    assert sees(cat) == (404, False)  # not routed to cat, not offered yet
    escalation.advance_waiting_chats(now=conversation.routed_at + timedelta(minutes=2))
    assert sees(cat) == (200, True)  # offered to everyone on duty
    crm.set_on_duty(user=cat, on_duty=False)
    assert sees(cat) == (404, False)
    services.close_conversation(conversation=conversation)
    assert sees(bob)[0] == 404  # closed: back to the lead's own rule
