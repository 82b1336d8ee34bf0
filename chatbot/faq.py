"""The FAQ matcher cache: each site's fitted matcher, kept per process and per FAQ version.

`best_faq` answers from the site's active FAQ entries. A process refits a site's matcher only when
its FAQ changed, and looks at the FAQ's version at most every FAQ_RECHECK_SECONDS. A saved or
deleted entry drops this process's matcher at once (`forget_faq_index`, connected in apps.py);
other processes notice the change within FAQ_RECHECK_SECONDS.

The answer threshold is calibrated on the site's own FAQ (`chatbot.intents.calibrate`: held-out
variants in scope, held-out entries and generic off-topic questions out of scope) and stored on the
site (`recalibrate`). It costs about a quarter of a second for a 16-entry FAQ (measured on the demo
bakery), too much for a chat reply, so a saved or deleted entry queues the `calibrate_faq` task
after commit; a refit that finds the stored calibration older than the FAQ queues it too (a lost
nudge is caught up the next time the FAQ is fitted).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from chatbot import bot
from chatbot.intents import Calibration, FaqMatcher, calibrate, content_words, normalise
from chatbot.models import FaqEntry, Message, Resolution, Sender, Site
from config.on_commit import enqueue_on_commit

CALIBRATE_TASK = "chatbot.tasks.calibrate_faq"

FAQ_RECHECK_SECONDS = 5.0
UNANSWERED_WINDOW = 500  # the newest open questions a group is looked for in


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
    version = _faq_version(site)
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
    if (site.faq_calibration or {}).get("version") != _version_key(version):
        enqueue_on_commit(CALIBRATE_TASK, site.pk)  # stored calibration is of an older FAQ
    return index


def _faq_version(site: Site) -> tuple[Any, ...]:
    stats = FaqEntry.objects.filter(site=site, active=True).aggregate(
        n=Count("id"), at=Max("updated_at"), top=Max("id")
    )
    return (stats["n"], stats["at"], stats["top"])


def _version_key(version: tuple[Any, ...]) -> str:
    n, at, top = version
    return f"{n}:{at.isoformat() if at else ''}:{top or ''}"


def recalibrate(site_id: int) -> Calibration | None:
    """Choose the site's answer threshold on its current FAQ and store it with its figures.

    Idempotent; does nothing if the stored calibration is already of the current FAQ (None then).
    """
    site = Site.objects.filter(pk=site_id).first()
    if site is None:
        return None
    version = _version_key(_faq_version(site))
    if (site.faq_calibration or {}).get("version") == version:
        return None
    entries = FaqEntry.objects.filter(site=site, active=True).only("id", "question", "variants")
    result = calibrate([(e.pk, e.all_questions) for e in entries])
    figures = {**result.as_json(), "version": version, "at": timezone.now().isoformat()}
    Site.objects.filter(pk=site_id).update(
        faq_threshold_calibrated=result.threshold if result.calibrated else None, faq_calibration=figures
    )
    return result


def request_recalibration(site_id: int) -> None:
    """Queue the site's threshold calibration after commit (its FAQ changed)."""
    enqueue_on_commit(CALIBRATE_TASK, site_id)


def closest_faq(site: Site, text: str) -> bot.FaqHit | None:
    """The site's FAQ entry closest to `text` (a suggestion for a manager; same as best_faq)."""
    return best_faq(site, text)


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


# --- The managers' unanswered-questions list: turn a question into FAQ, or dismiss it -------------


def unanswered_key(text: str) -> str:
    """What groups similar unanswered questions: their content words, lower-cased."""
    return content_words(text)


def open_group(site: Site, message_id: int) -> list[Message]:
    """The open unanswered question `message_id` of `site` and the open ones of the same group.

    Raises Message.DoesNotExist for an id that is not an open unanswered question of this site
    (another site's question is not reachable through this one)."""
    open_questions = Message.objects.filter(
        conversation__site=site, sender=Sender.VISITOR, unanswered=True, resolution=Resolution.OPEN
    )
    first = open_questions.get(pk=message_id)
    key = unanswered_key(first.text)
    recent = open_questions.order_by("-created_at")[:UNANSWERED_WINDOW]
    return [first, *(m for m in recent if m.pk != first.pk and unanswered_key(m.text) == key)]


def _resolve(group: list[Message], *, how: str, entry: FaqEntry | None, by: User) -> int:
    return Message.objects.filter(pk__in=[m.pk for m in group]).update(
        resolution=how, resolved_faq=entry, resolved_by=by, resolved_at=timezone.now()
    )


@transaction.atomic
def add_as_entry(*, site: Site, message_id: int, question: str, answer: str, by: User) -> FaqEntry:
    """Make an unanswered question (and its group) a new FAQ entry of its site with `answer`."""
    group = open_group(site, message_id)
    entry = FaqEntry(site=site, question=question.strip(), answer=answer.strip())
    variants = [m.text for m in group if normalise(m.text) != normalise(entry.question)]
    entry.variants = "\n".join(dict.fromkeys(v.replace("\n", " ") for v in variants))
    entry.full_clean()  # ValidationError for a blank answer or a question over 300 characters
    entry.save()
    _resolve(group, how=Resolution.NEW_ENTRY, entry=entry, by=by)
    return entry


@transaction.atomic
def add_as_variant(*, site: Site, message_id: int, entry_id: int, by: User) -> FaqEntry:
    """Add an unanswered question (and its group) as variants of one of its site's FAQ entries."""
    group = open_group(site, message_id)
    entry = FaqEntry.objects.select_for_update().filter(site=site, pk=entry_id).first()
    if entry is None:
        raise ValidationError({"entry": "Choose an FAQ entry of this site."})
    known = {normalise(q) for q in entry.all_questions}
    new = [m.text.replace("\n", " ") for m in group if normalise(m.text) not in known]
    if new:
        entry.variants = "\n".join([*entry.variants.splitlines(), *dict.fromkeys(new)]).strip()
        entry.active = True
        entry.save()
    _resolve(group, how=Resolution.VARIANT, entry=entry, by=by)
    return entry


@transaction.atomic
def dismiss(*, site: Site, message_id: int, by: User) -> int:
    """Take an unanswered question (and its group) off the list without changing the FAQ."""
    return _resolve(open_group(site, message_id), how=Resolution.DISMISSED, entry=None, by=by)


def set_threshold(*, site: Site, auto: bool, threshold: float | None) -> Site:
    """A manager's choice: the calibrated threshold (`auto`), or their own `threshold` (0..1)."""
    if not auto:
        if threshold is None:
            raise ValidationError(
                {"threshold": "Give a threshold between 0 and 1, or use the calibrated one."}
            )
        site.faq_threshold = threshold
    site.faq_threshold_auto = auto
    site.full_clean()
    site.save(update_fields=["faq_threshold", "faq_threshold_auto"])
    return site
