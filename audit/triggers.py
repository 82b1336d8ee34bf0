"""PostgreSQL triggers that append every change of the tracked tables to the audit trail.

Whatever writes the row (the ORM, `QuerySet.update()`, raw SQL, psql) the trigger records it,
with the changed columns before and after. The actor comes from pghistory's context: the request
middleware (`audit.middleware`) or an `audit.services.acting_as` block sets it per transaction
with `set_config('pghistory.context_metadata', …, true)`; without one the row says "system".

Triggers are registered with django-pgtrigger at start-up and installed after every `migrate`
(PGTRIGGER_INSTALL_ON_MIGRATE), never through the tracked apps' migrations
(PGTRIGGER_MIGRATIONS = False): those apps know nothing about the audit. On SQLite pgtrigger
installs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pgtrigger
from django.contrib.auth import get_user_model
from django.db import models

from audit.models import Entry
from chatbot.models import FaqEntry, ProactiveMessage, SegmentFlow, Site
from leadcrm.models import SCORE_FIELDS, Consent, FollowUp, Interaction, Lead
from scoring.ml.models import MlSettings, ModelVersion, ProtectedAttribute
from scoring.models import GradeBand, Rule

HIDDEN = "(hidden)"
# Above this many rows in one INSERT/DELETE statement (bulk imports, benchmarks) a statement-level
# trigger writes one summary row instead of one row per lead.
BULK_ROWS = 50
# Lead columns written by machines (scores, the rescore mark, chat presence, activity stamps):
# changing only these is not an audited change, and they never appear in before/after.
LEAD_MACHINE_FIELDS = (*SCORE_FIELDS, "rescore_requested_at", "live_until", "last_activity_at", "updated_at")


@dataclass(frozen=True)
class Tracked:
    """How one table is audited."""

    model: type[models.Model]
    ignore: tuple[str, ...] = ()  # never recorded; a change of only these records nothing
    redact: tuple[str, ...] = ()  # recorded as "(hidden)": that it changed, never the value
    lead_field: str | None = None  # the field holding the id of the person the row is about
    operations: tuple[str, ...] = ("insert", "update", "delete")
    bulk: bool = False  # INSERT/DELETE as statement-level triggers (summary above BULK_ROWS)


TRACKED: tuple[Tracked, ...] = (
    Tracked(Lead, ignore=LEAD_MACHINE_FIELDS, lead_field="id", bulk=True),
    Tracked(Consent, lead_field="lead", bulk=True),  # an import writes thousands at once
    Tracked(FollowUp, ignore=("updated_at",), lead_field="lead"),
    # Interactions arrive by the million: no INSERT or DELETE trigger (a lead's deletion is
    # recorded on the lead). Edits of an existing interaction are rare and recorded; moving them
    # to another lead (a merge) is recorded on the leads, not once per interaction.
    Tracked(Interaction, ignore=("lead",), lead_field="lead", operations=("update",)),
    Tracked(Rule, ignore=("last_error", "last_error_at", "updated_at")),
    Tracked(GradeBand),
    Tracked(MlSettings),
    Tracked(ProtectedAttribute),
    Tracked(ModelVersion, ignore=("artifact",)),  # the pickled model: large, and not readable
    Tracked(Site, redact=("identity_secret",)),
    Tracked(FaqEntry, ignore=("updated_at",)),
    Tracked(ProactiveMessage),
    Tracked(SegmentFlow),
)


def _q(name: str | None) -> str:
    assert name, "a column name"
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _fields(spec: Tracked) -> list[models.Field]:
    ignore = set(spec.ignore)
    return [f for f in spec.model._meta.concrete_fields if f.name not in ignore]


def _snapshot(spec: Tracked, alias: str, *, compare: bool) -> str:
    """A jsonb of the row's recorded columns. Redacted columns: an md5 to compare (never stored),
    or "(hidden)" to store."""
    pairs = []
    for field in _fields(spec):
        column = f"{alias}.{_q(field.column)}"
        if field.name in spec.redact:
            value = (
                f"md5({column}::text)"
                if compare
                else f"CASE WHEN {column} IS NULL THEN NULL ELSE {_lit(HIDDEN)}::text END"
            )
        else:
            value = column
        pairs.append(f"{_lit(field.column)}::text, {value}")
    # jsonb_build_object takes at most 100 arguments: build in chunks and concatenate.
    chunks = [pairs[i : i + 40] for i in range(0, len(pairs), 40)]
    return " || ".join(f"jsonb_build_object({', '.join(chunk)})" for chunk in chunks)


def _lead_expr(spec: Tracked, alias: str) -> str:
    if spec.lead_field is None:
        return "NULL"
    return f"{alias}.{_q(_column(spec.model, spec.lead_field))}"


def _column(model: type[models.Model], name: str) -> str:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)
    return field.column


_DECLARE = [
    ("ctx", "jsonb"),
    ("cid", "uuid"),
    ("actor_id", "bigint"),
    ("actor_name", "text"),
    ("b", "jsonb"),
    ("a", "jsonb"),
    ("n", "bigint"),
    ("lo", "text"),
    ("hi", "text"),
]


def _context_sql() -> str:
    user = get_user_model()
    username = _column(user, user.USERNAME_FIELD)
    return f"""
        ctx := NULLIF(current_setting('pghistory.context_metadata', true), '')::jsonb;
        cid := NULLIF(current_setting('pghistory.context_id', true), '')::uuid;
        actor_id := NULLIF(ctx->>'user', '')::bigint;
        actor_name := COALESCE(
            ctx->>'username',
            (SELECT u.{_q(username)} FROM {_q(user._meta.db_table)} u WHERE u.{_q(user._meta.pk.column)} = actor_id),
            ''
        );
    """


def _insert_sql() -> str:
    columns = (
        "at",
        "actor",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "lead_id",
        "summary",
        "before",
        "after",
        "path",
        "method",
        "source",
        "context_id",
    )
    names = ", ".join(_q(_column(Entry, c)) for c in columns)
    return f"INSERT INTO {_q(Entry._meta.db_table)} ({names})"


def _values(spec: Tracked, *, action: str, alias: str, summary: str, before: str, after: str) -> str:
    pk = _q(spec.model._meta.pk.column)
    target = f"{alias}.{pk}::text" if alias else "''"
    lead = _lead_expr(spec, alias) if alias else "NULL"
    return (
        f"clock_timestamp(), actor_id, left(actor_name, 150), {_lit(action)}, "
        f"{_lit(spec.model._meta.label_lower)}, {target}, {lead}, {summary}, {before}, {after}, "
        "left(COALESCE(ctx->>'url', ''), 300), left(COALESCE(ctx->>'method', ''), 8), 'db', cid"
    )


class AuditTrigger(pgtrigger.Trigger):
    """Appends audit rows for one operation on one tracked table."""

    def __init__(self, spec: Tracked, operation: str) -> None:
        self.spec = spec
        self.op = operation
        bulk = spec.bulk and operation in ("insert", "delete")
        fields = [_q(f.column) for f in _fields(spec)]
        condition = None
        if operation == "update":
            condition = pgtrigger.Condition(
                f"(({', '.join('OLD.' + c for c in fields)}) IS DISTINCT FROM ({', '.join('NEW.' + c for c in fields)}))"
            )
        super().__init__(
            name=f"audit_{operation}",
            when=pgtrigger.After,
            operation={"insert": pgtrigger.Insert, "update": pgtrigger.Update, "delete": pgtrigger.Delete}[
                operation
            ],
            level=pgtrigger.Statement if bulk else pgtrigger.Row,
            referencing=(
                (
                    pgtrigger.Referencing(new="audit_rows")
                    if operation == "insert"
                    else pgtrigger.Referencing(old="audit_rows")
                )
                if bulk
                else None
            ),
            condition=condition,
            declare=_DECLARE,
        )

    def get_func(self, model: models.Model) -> str:
        spec = self.spec
        insert = _insert_sql()
        head = _context_sql()
        if self.op == "update":
            redact = "".join(
                f"IF b ? {_lit(f.column)} THEN "
                f"b := b || jsonb_build_object({_lit(f.column)}::text, {_lit(HIDDEN)}::text); "
                f"a := a || jsonb_build_object({_lit(f.column)}::text, {_lit(HIDDEN)}::text); END IF; "
                for f in _fields(spec)
                if f.name in spec.redact
            )
            return f"""{head}
                SELECT jsonb_object_agg(o.key, o.value), jsonb_object_agg(o.key, nj.doc -> o.key)
                  INTO b, a
                  FROM (SELECT {_snapshot(spec, "NEW", compare=True)} AS doc) AS nj,
                       jsonb_each({_snapshot(spec, "OLD", compare=True)}) AS o
                 WHERE o.value IS DISTINCT FROM nj.doc -> o.key;
                IF b IS NULL THEN RETURN NULL; END IF;
                {redact}
                {insert} VALUES ({_values(spec, action="changed", alias="NEW", summary="''", before="b", after="a")});
                RETURN NULL;
            """
        action = "created" if self.op == "insert" else "deleted"
        row_before = (
            "NULL" if self.op == "insert" else _snapshot(spec, "r" if spec.bulk else "OLD", compare=False)
        )
        row_after = (
            _snapshot(spec, "r" if spec.bulk else "NEW", compare=False) if self.op == "insert" else "NULL"
        )
        if not spec.bulk:
            alias = "NEW" if self.op == "insert" else "OLD"
            values = _values(
                spec, action=action, alias=alias, summary="''", before=row_before, after=row_after
            )
            return f"{head} {insert} VALUES ({values}); RETURN NULL;"
        pk = _q(spec.model._meta.pk.column)
        verbose = str(spec.model._meta.verbose_name_plural)
        summary = (
            f"n::text || {_lit(' ' + verbose + ' ' + action + ' by one statement (ids ')} || lo || ' to ' || hi"
            f" || {_lit('); bulk rows are not copied into the trail.')}"
        )
        per_row = _values(spec, action=action, alias="r", summary="''", before=row_before, after=row_after)
        one_row = _values(spec, action=action, alias="", summary=summary, before="NULL", after="NULL")
        return f"""{head}
            SELECT count(*), min(r.{pk})::text, max(r.{pk})::text INTO n, lo, hi FROM audit_rows r;
            IF n = 0 THEN RETURN NULL; END IF;
            IF n <= {BULK_ROWS} THEN
                {insert} SELECT {per_row} FROM audit_rows r ORDER BY r.{pk};
            ELSE
                {insert} VALUES ({one_row});
            END IF;
            RETURN NULL;
        """


class AppendOnly(pgtrigger.Trigger):
    """Refuses UPDATE and DELETE of audit rows, except inside `audit.services.scrub_person`."""

    def __init__(self) -> None:
        super().__init__(
            name="append_only",
            when=pgtrigger.Before,
            operation=pgtrigger.Update | pgtrigger.Delete,
            level=pgtrigger.Row,
        )

    def get_func(self, model: models.Model) -> str:
        return """
            IF current_setting('audit.scrub', true) = 'on' THEN
                IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'The audit trail is append-only: % of an audit row refused.', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        """


def triggers_for(spec: Tracked) -> Sequence[AuditTrigger]:
    return [AuditTrigger(spec, operation) for operation in spec.operations]


def register() -> None:
    """Register every audit trigger with pgtrigger (installed after `migrate` on PostgreSQL)."""
    for spec in TRACKED:
        for trigger in triggers_for(spec):
            trigger.register(spec.model)  # type: ignore[arg-type]  # pgtrigger types classes as instances
    AppendOnly().register(Entry)  # type: ignore[arg-type]
