"""The FAQ matcher cache: each site's fitted matcher, kept per process and per FAQ version.

`best_faq` answers from the site's active FAQ entries. A process refits a site's matcher only when
its FAQ changed, and looks at the FAQ's version at most every FAQ_RECHECK_SECONDS. A saved or
deleted entry drops this process's matcher at once (`forget_faq_index`, connected in apps.py);
other processes notice the change within FAQ_RECHECK_SECONDS.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max

from chatbot import bot
from chatbot.intents import FaqMatcher
from chatbot.models import FaqEntry, Site

FAQ_RECHECK_SECONDS = 5.0


@dataclass(frozen=True)
class FaqIndex:
    version: tuple[Any, ...]
    matcher: FaqMatcher
    entries: dict[int, tuple[str, str]]  # id -> (question, answer)
    checked_at: float = 0.0


_cache: dict[int, FaqIndex] = {}
_lock = threading.Lock()


def faq_index(site: Site) -> FaqIndex:
    """The fitted matcher for the site's active FAQ; refitted only when an entry changed."""
    cached = _cache.get(site.pk)
    # Checking the FAQ's version costs a query; do it at most every few seconds per process.
    if cached is not None and time.monotonic() - cached.checked_at < FAQ_RECHECK_SECONDS:
        return cached
    active = FaqEntry.objects.filter(site=site, active=True)
    stats = active.aggregate(n=Count("id"), at=Max("updated_at"), top=Max("id"))
    version = (stats["n"], stats["at"], stats["top"])
    if cached is not None and cached.version == version:
        _cache[site.pk] = FaqIndex(version, cached.matcher, cached.entries, time.monotonic())
        return _cache[site.pk]
    with _lock:
        entries = list(active.only("id", "question", "variants", "answer"))
        index = FaqIndex(
            version=version,
            matcher=FaqMatcher([(e.pk, e.all_questions) for e in entries]),
            entries={e.pk: (e.question, e.answer) for e in entries},
            checked_at=time.monotonic(),
        )
        _cache[site.pk] = index
    return index


def best_faq(site: Site, text: str) -> bot.FaqHit | None:
    """The site's FAQ entry closest to `text`, with its confidence; None for no entries or no text."""
    index = faq_index(site)
    match = index.matcher.match(text)
    if match is None:
        return None
    question, answer = index.entries[match.entry_id]
    return bot.FaqHit(match.entry_id, question, answer, match.confidence)


def forget_faq_index(site_id: int) -> None:
    """Drop this process's fitted matcher for a site (called when an FAQ entry changes)."""
    _cache.pop(site_id, None)
