"""Follow-up sequences: define steps, enrol leads (by hand, by segment, by trigger), run due steps.

- Steps run in the beat task (`run_due`): due enrolments are picked set-based (FOR UPDATE SKIP
  LOCKED, a bounded batch), each step writes one StepRun (unique per enrolment and step) in the
  same transaction as its email or task, so a retried or doubled run never sends twice.
- Emails go through `outreach.services.send_email` (timeline entry, tracking only with consent,
  replies matched back); a sequence never emails someone without the consent it needs: the step
  is recorded as skipped with the reason.
- A lead leaves when they reply (an email reply or a chat message of theirs), are won or closed,
  unsubscribe, withdraw consent or are erased (`apply_exits`, set-based, every minute and right
  before a batch runs).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from config.on_commit import enqueue_on_commit
from leadcrm import routing
from leadcrm import services as crm
from leadcrm.models import (
    CLOSED_STATUSES,
    Consent,
    ConsentPurpose,
    Interaction,
    InteractionKind,
    Lead,
    LeadStatus,
    Segment,
    SegmentKind,
    SegmentMembership,
)
from leadcrm.permissions import can_change_lead, is_manager
from outreach import services as outreach
from sequences.models import (
    ConsentNeeded,
    Enrolment,
    EnrolmentState,
    EnrolSource,
    ExitReason,
    RunOutcome,
    Sequence,
    Step,
    StepKind,
    StepRun,
    Trigger,
    WaitUnit,
)

logger = logging.getLogger(__name__)

BATCH = 200  # enrolments per beat transaction
STEPS_PER_TICK = 20  # steps one enrolment may run in one go (emails and tasks until the next wait)
MAX_WAIT_DAYS = 365
MAX_TASK_DUE_HOURS = 24 * 60

# --- Templates and merge fields ------------------------------------------------------------------

MERGE_FIELDS: dict[str, str] = {
    "first_name": "the lead's first name",
    "last_name": "the lead's last name",
    "full_name": "the lead's name",
    "company": "the lead's company",
    "city": "the lead's city",
    "owner_name": "the name of the lead's owner (or of the sender)",
}
# {first_name} or {first_name|there} (a fallback when the lead has no first name); {{ and }} are braces.
FIELD_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
NAME_RE = re.compile(r"^\s*([a-z_]+)\s*(?:\|([^{}|]*))?$")


def template_errors(text: str) -> list[str]:
    """What is wrong with the merge fields of a template (unknown names, stray braces)."""
    errors: list[str] = []
    rest = FIELD_RE.sub("", text)
    if "{" in rest or "}" in rest:
        errors.append("A brace is not closed; write merge fields like {first_name}, and {{ for a brace.")
    for match in FIELD_RE.finditer(text):
        inner = match.group(1)
        if inner is None:
            continue
        named = NAME_RE.match(inner)
        if named is None or named.group(1) not in MERGE_FIELDS:
            errors.append(
                f"Unknown merge field {{{inner}}}. Use one of: "
                + ", ".join(f"{{{name}}}" for name in MERGE_FIELDS)
                + "."
            )
    return errors


def merge_values(lead: Lead, *, sender: User | None) -> dict[str, str]:
    owner = lead.owner or sender
    return {
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "full_name": " ".join(p for p in (lead.first_name, lead.last_name) if p),
        "company": lead.company_name,
        "city": lead.city,
        "owner_name": (owner.get_full_name() or owner.get_username()) if owner else "",
    }


def render_template(text: str, values: Mapping[str, str]) -> str:
    """Fill the merge fields of a checked template; an empty value uses the field's fallback."""

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        named = NAME_RE.match(match.group(1) or "")
        if named is None:
            return token
        value = values.get(named.group(1), "")
        return value or (named.group(2) or "").strip()

    return FIELD_RE.sub(fill, text)


# --- Defining sequences --------------------------------------------------------------------------


def _require_manager(user: User) -> None:
    if not is_manager(user):
        raise PermissionDenied("Only managers define sequences.")


def save_sequence(*, sequence: Sequence, by: User) -> Sequence:
    """Create or change a sequence's settings (name, consent it needs, trigger, paused or not)."""
    _require_manager(by)
    sequence.name = " ".join(sequence.name.split())
    if sequence.pk is None:
        sequence.created_by = by
    sequence.full_clean()
    sequence.save()
    return sequence


def _check_step(step: Step) -> None:
    errors: dict[str, list[str]] = {}
    if step.kind == StepKind.EMAIL:
        step.subject = " ".join(step.subject.split())
        step.body = step.body.replace("\r\n", "\n").strip()
        if not step.subject:
            errors["subject"] = ["Write a subject."]
        else:
            errors["subject"] = template_errors(step.subject)
        if not step.body:
            errors["body"] = ["Write the message."]
        elif len(step.body) > outreach.TEXT_MAX:
            errors["body"] = [f"Keep the message under {outreach.TEXT_MAX} characters."]
        else:
            errors["body"] = template_errors(step.body)
    elif step.kind == StepKind.WAIT:
        if not step.wait_amount:
            errors["wait_amount"] = ["Say how long to wait (at least 1)."]
        elif step.wait_amount * (24 if step.wait_unit == WaitUnit.DAYS else 1) > MAX_WAIT_DAYS * 24:
            errors["wait_amount"] = [f"Wait at most {MAX_WAIT_DAYS} days."]
    elif step.kind == StepKind.TASK:
        step.task_note = step.task_note.strip()
        if not step.task_note:
            errors["task_note"] = ["Say what the salesperson should do, e.g. “Call about the quote”."]
        if step.task_due_hours > MAX_TASK_DUE_HOURS:
            errors["task_due_hours"] = [f"Make the task due within {MAX_TASK_DUE_HOURS // 24} days."]
    else:
        errors["kind"] = ["Pick a kind of step."]
    errors = {field: messages for field, messages in errors.items() if messages}
    if errors:
        raise ValidationError(errors)
    step.full_clean(exclude=["sequence", "position"])


def add_step(*, sequence: Sequence, step: Step, by: User) -> Step:
    """Append a step at the end of the sequence (ValidationError for a bad template)."""
    _require_manager(by)
    _check_step(step)
    with transaction.atomic():
        Sequence.objects.select_for_update().filter(pk=sequence.pk).first()  # one appender at a time
        last = sequence.steps.order_by("-position").values_list("position", flat=True).first()
        step.sequence = sequence
        step.position = 0 if last is None else last + 1
        step.save()
    return step


def update_step(*, step: Step, by: User) -> Step:
    """Change a step; leads already past it are not affected, leads before it get the new text."""
    _require_manager(by)
    _check_step(step)
    step.save()
    return step


def delete_step(*, step: Step, by: User) -> None:
    """Remove a step; its runs stay in the history (without the step)."""
    _require_manager(by)
    step.delete()


# --- Enrolling -----------------------------------------------------------------------------------


def _can_enrol(sequence: Sequence) -> None:
    if not sequence.active:
        raise ValidationError({"sequence": f"“{sequence.name}” is paused; resume it first."})
    if not sequence.steps.exists():
        raise ValidationError({"sequence": f"“{sequence.name}” has no steps yet."})


def enrol_lead(*, sequence: Sequence, lead: Lead, by: User, now: datetime | None = None) -> Enrolment:
    """Put one lead into a sequence by hand; its first step runs right after commit."""
    if not can_change_lead(by, lead):
        raise PermissionDenied(
            "Claim this lead before adding it to a sequence."
            if lead.owner_id is None
            else "This lead belongs to someone else."
        )
    _can_enrol(sequence)
    if lead.erased_at is not None:
        raise ValidationError({"sequence": "This person's data was erased."})
    if lead.status in CLOSED_STATUSES:
        raise ValidationError({"sequence": "This lead is closed; reopen it first."})
    now = now or timezone.now()
    try:
        with transaction.atomic():
            enrolment = Enrolment.objects.create(
                sequence=sequence,
                lead=lead,
                source=EnrolSource.HAND,
                enrolled_by=by,
                enrolled_at=now,
                next_run_at=now,
            )
    except IntegrityError:
        active = (
            Enrolment.objects.filter(lead=lead, state=EnrolmentState.ACTIVE)
            .select_related("sequence")
            .first()
        )
        name = active.sequence.name if active else "another sequence"
        raise ValidationError(
            {"sequence": f"This lead is already in “{name}”; stop that one first."}
        ) from None
    enqueue_on_commit("sequences.tasks.run_enrolments", [enrolment.pk])
    return enrolment


_INSERT_ENROLMENTS = """
INSERT INTO {enrolment} (sequence_id, lead_id, state, exit_reason, source, enrolled_by_id, enrolled_at,
                         next_position, next_run_at)
SELECT %s, m.lead_id, 'active', '', %s, %s, %s, 0, %s
FROM {membership} m JOIN {lead} l ON l.id = m.lead_id
WHERE m.segment_id = %s AND l.erased_at IS NULL AND l.status NOT IN ({closed}) {since}
  AND NOT EXISTS (SELECT 1 FROM {enrolment} e
                  WHERE e.lead_id = m.lead_id AND (e.state = 'active' OR e.sequence_id = %s))
ON CONFLICT DO NOTHING
"""


def _insert_segment_enrolments(
    *,
    sequence: Sequence,
    segment_id: int,
    source: str,
    by: User | None,
    now: datetime,
    since: datetime | None,
) -> int:
    """One INSERT … SELECT: members not erased, not closed, in no active sequence and never in this one."""
    sql = _INSERT_ENROLMENTS.format(
        enrolment=Enrolment._meta.db_table,
        membership=SegmentMembership._meta.db_table,
        lead=Lead._meta.db_table,
        closed=", ".join(["%s"] * len(CLOSED_STATUSES)),
        since="AND m.added_at >= %s" if since is not None else "",
    )
    stamp = connection.ops.adapt_datetimefield_value  # raw SQL: the backend's own datetime format
    params: list[Any] = [sequence.pk, source, by.pk if by else None, stamp(now), stamp(now), segment_id]
    params += list(CLOSED_STATUSES)
    if since is not None:
        params.append(stamp(since))
    params.append(sequence.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(cursor.rowcount, 0)


@dataclass(frozen=True)
class SegmentEnrolment:
    enrolled: int
    members: int

    @property
    def skipped(self) -> int:
        return self.members - self.enrolled


def enrol_segment(
    *,
    sequence: Sequence,
    segment: Segment,
    by: User,
    follow_new_members: bool = False,
    now: datetime | None = None,
) -> SegmentEnrolment:
    """Enrol every current member of a segment at once (set-based); optionally its new members later.

    Skipped: members already in a sequence, who went through this one before, closed or erased."""
    _require_manager(by)
    _can_enrol(sequence)
    now = now or timezone.now()
    if segment.kind == SegmentKind.DYNAMIC:
        crm.refresh_dynamic_segment(segment=segment, now=now)  # "current members" means now
    with transaction.atomic():
        enrolled = _insert_segment_enrolments(
            sequence=sequence, segment_id=segment.pk, source=EnrolSource.SEGMENT, by=by, now=now, since=None
        )
        if follow_new_members:
            sequence.auto_segment, sequence.auto_segment_since = segment, now
        elif sequence.auto_segment_id == segment.pk:
            sequence.auto_segment, sequence.auto_segment_since = None, None
        sequence.save(update_fields=["auto_segment", "auto_segment_since", "updated_at"])
    members = SegmentMembership.objects.filter(segment=segment).count()
    return SegmentEnrolment(enrolled=enrolled, members=members)


def enrol_new_segment_members(*, now: datetime | None = None) -> int:
    """Beat: members added to a followed segment since it was chosen join its sequence."""
    now = now or timezone.now()
    total = 0
    followed = Sequence.objects.filter(active=True, auto_segment__isnull=False).select_related("auto_segment")
    for sequence in followed:  # one statement per followed sequence (a handful), never per lead
        segment = sequence.auto_segment
        assert segment is not None
        if segment.kind == SegmentKind.DYNAMIC and (
            segment.refreshed_at is None or segment.refreshed_at < now - timedelta(hours=1)
        ):
            crm.refresh_dynamic_segment(segment=segment, now=now)
        total += _insert_segment_enrolments(
            sequence=sequence,
            segment_id=segment.pk,
            source=EnrolSource.SEGMENT,
            by=None,
            now=now,
            since=sequence.auto_segment_since,
        )
    return total


def enrol_by_trigger(*, trigger: str, lead_id: int, now: datetime | None = None) -> Enrolment | None:
    """A trigger fired for a lead (e.g. a chat callback request): enrol it in the first active
    sequence with that trigger, unless it is in a sequence already or went through that one."""
    now = now or timezone.now()
    lead = Lead.objects.filter(pk=lead_id, erased_at__isnull=True).exclude(status__in=CLOSED_STATUSES).first()
    if lead is None or not trigger:
        return None
    sequence = (
        Sequence.objects.filter(active=True, trigger=trigger, steps__isnull=False)
        .exclude(enrolments__lead=lead)
        .order_by("pk")
        .first()
    )
    if sequence is None:
        return None
    try:
        with transaction.atomic():
            enrolment = Enrolment.objects.create(
                sequence=sequence, lead=lead, source=EnrolSource.TRIGGER, enrolled_at=now, next_run_at=now
            )
    except IntegrityError:
        return None  # already in an active sequence: one at a time
    enqueue_on_commit("sequences.tasks.run_enrolments", [enrolment.pk])
    return enrolment


def stop_enrolment(*, enrolment: Enrolment, by: User, now: datetime | None = None) -> Enrolment:
    """Stop a lead's sequence by hand (anyone who may change the lead)."""
    if not can_change_lead(by, enrolment.lead):
        raise PermissionDenied("Only the lead's owner or a manager can stop its sequence.")
    now = now or timezone.now()
    Enrolment.objects.filter(pk=enrolment.pk, state=EnrolmentState.ACTIVE).update(
        state=EnrolmentState.EXITED,
        exit_reason=ExitReason.STOPPED,
        stopped_by=by,
        ended_at=now,
        next_run_at=None,
    )
    enrolment.refresh_from_db()
    return enrolment


# --- Leaving -------------------------------------------------------------------------------------


def _exit_conditions() -> list[tuple[str, Q]]:
    """Why an active enrolment ends, in order of precedence (the first that holds is recorded)."""
    since = OuterRef("enrolled_at")
    theirs = Interaction.objects.filter(lead_id=OuterRef("lead_id"), occurred_at__gte=since)
    replied = theirs.filter(
        Q(kind=InteractionKind.EMAIL_REPLY) | Q(kind=InteractionKind.CHAT_MESSAGE, payload__from="visitor")
    )
    unsubscribed = theirs.filter(kind=InteractionKind.UNSUBSCRIBE)
    withdrawn = Consent.objects.filter(lead_id=OuterRef("lead_id"), granted=False, recorded_at__gte=since)
    # Withdrawing marketing consent ends every sequence; withdrawing contact consent ends the ones
    # that rest on it.
    opted_out = Q(Exists(withdrawn.filter(purpose=ConsentPurpose.MARKETING))) | Q(
        Exists(withdrawn.filter(purpose=ConsentPurpose.CONTACT)),
        sequence__consent_needed=ConsentNeeded.CONTACT,
    )
    return [
        (ExitReason.ERASED, Q(lead__erased_at__isnull=False)),
        (ExitReason.CONVERTED, Q(lead__status=LeadStatus.WON)),
        (ExitReason.CLOSED, Q(lead__status__in=[LeadStatus.LOST, LeadStatus.DISQUALIFIED])),
        (ExitReason.UNSUBSCRIBED, Q(Exists(unsubscribed))),
        (ExitReason.CONSENT_WITHDRAWN, opted_out),
        (ExitReason.REPLIED, Q(Exists(replied))),
    ]


def apply_exits(*, now: datetime | None = None, ids: Seq[int] | None = None) -> int:
    """End active enrolments whose lead replied, converted, closed or opted out (one UPDATE per reason)."""
    now = now or timezone.now()
    ended = 0
    for reason, condition in _exit_conditions():
        active = Enrolment.objects.filter(state=EnrolmentState.ACTIVE)
        if ids is not None:
            active = active.filter(pk__in=ids)
        ended += active.filter(condition).update(
            state=EnrolmentState.EXITED, exit_reason=reason, ended_at=now, next_run_at=None
        )
    return ended


# --- Running steps -------------------------------------------------------------------------------


def _consent_problem(sequence: Sequence, lead: Lead) -> str:
    if sequence.consent_needed == ConsentNeeded.CONTACT:
        if lead.contact_consent or lead.marketing_consent:
            return ""
        return "No consent: this person has not agreed to be contacted."
    if lead.marketing_consent:
        return ""
    return "No consent: this person has not agreed to marketing messages."


def _sender(enrolment: Enrolment) -> User | None:
    """Who the email is from: the lead's owner, else the manager who wrote the sequence."""
    lead, sequence = enrolment.lead, enrolment.sequence
    for candidate in (lead.owner, sequence.created_by):
        if candidate is not None and candidate.is_active and can_change_lead(candidate, lead):
            return candidate
    return None


def _run_email(enrolment: Enrolment, step: Step, run: StepRun) -> None:
    lead = enrolment.lead
    if not lead.email or lead.erased_at:
        run.outcome, run.reason = RunOutcome.SKIPPED, "No email address."
        return
    problem = _consent_problem(enrolment.sequence, lead)
    if problem:
        run.outcome, run.reason = RunOutcome.SKIPPED, problem
        return
    sender = _sender(enrolment)
    if sender is None:
        run.outcome, run.reason = (
            RunOutcome.SKIPPED,
            "No sender: the lead has no owner and the author is no manager.",
        )
        return
    values = merge_values(lead, sender=sender)
    try:
        email = outreach.send_email(
            lead=lead,
            by=sender,
            subject=render_template(step.subject, values),
            text=render_template(step.body, values),
        )
    except (ValidationError, PermissionDenied) as exc:
        messages = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
        run.outcome, run.reason = RunOutcome.SKIPPED, " ".join(messages)[:300]
        return
    run.outcome, run.interaction_id = RunOutcome.SENT, email.interaction_id


def _run_task(enrolment: Enrolment, step: Step, run: StepRun, now: datetime) -> None:
    lead = enrolment.lead
    try:  # the lead's owner, else the routing rule's pick: a promise always has an owner
        owner = routing.promise_owner(lead, now=now, fallback=enrolment.sequence.created_by)
    except ValidationError as exc:
        run.outcome, run.reason = RunOutcome.SKIPPED, " ".join(exc.messages)[:300]
        return
    follow_up = crm.add_follow_up(
        lead=lead,
        due_at=now + timedelta(hours=step.task_due_hours),
        note=f"{step.task_note} (sequence “{enrolment.sequence.name}”)"[:1000],
        assigned_to=owner,
        now=now,
    )
    run.outcome, run.follow_up = RunOutcome.TASK, follow_up


def _wait(step: Step) -> timedelta:
    amount = step.wait_amount or 0
    return timedelta(days=amount) if step.wait_unit == WaitUnit.DAYS else timedelta(hours=amount)


def _run_step(enrolment: Enrolment, step: Step, now: datetime) -> StepRun | None:
    """Run one step once: None when a run of this step exists (a retry), else the stored run."""
    try:
        with transaction.atomic():
            run = StepRun.objects.create(
                enrolment=enrolment,
                step=step,
                position=step.position,
                kind=step.kind,
                outcome=RunOutcome.FAILED,
                ran_at=now,
            )
    except IntegrityError:
        return None
    try:
        with transaction.atomic():  # the email or task and the run's outcome, or neither
            if step.kind == StepKind.EMAIL:
                _run_email(enrolment, step, run)
            elif step.kind == StepKind.TASK:
                _run_task(enrolment, step, run, now)
            else:
                run.outcome = RunOutcome.WAITED
            run.save(update_fields=["outcome", "reason", "interaction", "follow_up"])
    except Exception as exc:  # one broken step must not stop everyone's sequence
        logger.exception("Sequence step %s failed for enrolment %s", step.pk, enrolment.pk)
        run.outcome, run.reason = RunOutcome.FAILED, f"Failed ({type(exc).__name__}); the sequence went on."
        run.interaction_id, run.follow_up = None, None
        run.save(update_fields=["outcome", "reason", "interaction", "follow_up"])
    return run


def _advance(enrolment: Enrolment, steps: Seq[Step], now: datetime) -> None:
    """Run this enrolment's due steps up to the next wait (or the end), then schedule the next."""
    for _ in range(STEPS_PER_TICK):
        step = next((s for s in steps if s.position >= enrolment.next_position), None)
        if step is None:
            enrolment.state, enrolment.ended_at, enrolment.next_run_at = EnrolmentState.FINISHED, now, None
            break
        _run_step(enrolment, step, now)
        enrolment.next_position = step.position + 1
        if step.kind == StepKind.WAIT:
            enrolment.next_run_at = now + _wait(step)
            break
    enrolment.save(update_fields=["state", "ended_at", "next_run_at", "next_position"])


def run_due(*, now: datetime | None = None, ids: Seq[int] | None = None, batch: int = BATCH) -> int:
    """Run the steps of up to `batch` due enrolments (or of `ids`, if due); how many were handled.

    Set-based: one locked read of the batch (SKIP LOCKED, so two workers share the work), the
    exits of the whole batch, one read of their steps. Safe to run twice: each step's run is
    unique per enrolment, so a retry finds it and sends nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        due = Enrolment.objects.filter(
            state=EnrolmentState.ACTIVE, next_run_at__lte=now, sequence__active=True
        )
        if ids is not None:
            due = due.filter(pk__in=ids)
        picked = list(
            due.order_by("next_run_at", "pk")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)[:batch]
        )
        if not picked:
            return 0
        apply_exits(now=now, ids=picked)
        enrolments = list(
            Enrolment.objects.filter(pk__in=picked, state=EnrolmentState.ACTIVE)
            .select_related("lead", "lead__owner", "sequence", "sequence__created_by")
            .order_by("next_run_at", "pk")
        )
        steps: dict[int, list[Step]] = {}
        for step in Step.objects.filter(sequence_id__in={e.sequence_id for e in enrolments}).order_by(
            "position"
        ):
            steps.setdefault(step.sequence_id, []).append(step)
        for enrolment in enrolments:
            _advance(enrolment, steps.get(enrolment.sequence_id, []), now)
    return len(picked)


def tick(*, now: datetime | None = None) -> int:
    """Beat, every minute: exits, new members of followed segments, then due steps in batches."""
    now = now or timezone.now()
    apply_exits(now=now)
    enrol_new_segment_members(now=now)
    handled = 0
    for _ in range(10):  # at most 10 batches a minute; the rest waits for the next tick
        done = run_due(now=now)
        handled += done
        if done < BATCH:
            break
    return handled


# --- Reads for the pages -------------------------------------------------------------------------


def trigger_label(trigger: str) -> str:
    return dict(Trigger.choices).get(trigger, trigger)
