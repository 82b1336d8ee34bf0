"""Demo chat history: recent hand-offs answered by the salespeople, so the widget's "usually
replies in about 2 minutes" (chatbot.waits) shows a real figure from the first visit.

Made through the chat's own services with past `now=` values (never in the future): a known
customer (signed identity) asks for a person during business hours, a salesperson replies after
a realistic delay (log-normal, median ~2 minutes), the chat ends.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.db import transaction

from chatbot import services as chat
from chatbot import waits
from chatbot.models import Conversation, Site
from leadcrm.models import Lead
from leadcrm.permissions import SALESPERSON_GROUP

CHATS = 24
QUESTIONS = [
    "Can I talk to a person about a birthday cake order?",
    "I'd like to speak to someone about catering for our office.",
    "Could a real person help me with a wedding cake tasting?",
    "Talk to someone please: my order hasn't arrived.",
]
REPLIES = [
    "Hi, this is {name} from the bakery. Happy to help: what date do you need it for?",
    "Hello! {name} here. Tell me a little more and I'll sort it out.",
]


def seed_chat_history(site: Site, *, now: datetime, seed: int = 16) -> str:
    """Add CHATS answered hand-offs over the last two weeks (once: skipped when recent ones exist)."""
    if Conversation.objects.filter(site=site, handoff_at__gte=now - waits.WINDOW).exists():
        return "Chat: recent hand-offs already there."
    agents = list(User.objects.filter(groups__name=SALESPERSON_GROUP, is_active=True).order_by("pk"))
    customers = [
        email
        for email in Lead.objects.filter(
            email__isnull=False, created_at__lt=now - waits.WINDOW - timedelta(days=1)
        )
        .order_by("pk")
        .values_list("email", flat=True)[:CHATS]
        if email
    ]
    if not agents or not customers:
        return "Chat: no salespeople or customers yet for a chat history."
    rng = random.Random(seed)
    with transaction.atomic():  # one rescore per lead after commit, not one per message
        made = _chats(site, customers, agents, rng, now)
    figure = waits.compute_usual_wait(site, now=now)
    told = figure.phrase or "no figure yet"
    return f"Chat: {made} past hand-offs answered; the widget says our team usually replies {told}."


def _chats(site: Site, customers: list[str], agents: list[User], rng: random.Random, now: datetime) -> int:
    zone = ZoneInfo(site.timezone)
    made = 0
    for i, email in enumerate(customers):
        day = (now - timedelta(days=1 + i % 13)).astimezone(zone).date()
        start = datetime(day.year, day.month, day.day, rng.randint(9, 17), rng.randint(0, 59), tzinfo=zone)
        if not site.is_open(start):
            continue
        wait = min(max(rng.lognormvariate(math.log(120), 0.6), 15), 900)
        asked_at = start + timedelta(seconds=rng.randint(20, 90))
        replied_at = asked_at + timedelta(seconds=wait)
        agent = agents[i % len(agents)]
        conversation, _ = chat.start_conversation(
            site=site,
            visitor_id=f"demo-chat-{i:04d}",
            identity_email=email,
            identity_signature=site.identity_signature(email),
            now=start,
        )
        chat.post_visitor_message(conversation=conversation, text=rng.choice(QUESTIONS), now=asked_at)
        chat.post_agent_message(
            conversation=conversation,
            user=agent,
            text=rng.choice(REPLIES).format(name=agent.first_name or agent.username),
            now=replied_at,
        )
        chat.close_conversation(
            conversation=Conversation.objects.get(pk=conversation.pk),
            rating=rng.choice([4, 5, 5]),
            now=replied_at + timedelta(minutes=rng.randint(2, 8)),
        )
        made += 1
    return made
