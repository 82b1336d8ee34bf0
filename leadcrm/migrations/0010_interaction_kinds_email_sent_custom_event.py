"""Two interaction kinds: email_sent (21) and custom_event (22).

Existing rows move to them, set-based:
- an email a salesperson sent was a note on the email channel with payload outcome "email" (from
  outreach's send_email, with direction "out", or from the "Email sent" outcome): now email_sent;
- a website custom event (leadcrm.track(name)) was a note on the web channel with payload via
  "tracking" and the name in "event": now custom_event, its name copied into "name" (what a
  scoring rule's pattern matches).

Backwards, both kinds become notes again (before the old check constraint returns).
"""

from __future__ import annotations

from django.conf import settings
from django.db import migrations, models

NOTE, EMAIL_SENT, CUSTOM_EVENT = 16, 21, 22


def emails_sent_from_notes(apps, schema_editor) -> int:
    Interaction = apps.get_model("leadcrm", "Interaction")
    return (
        Interaction.objects.using(schema_editor.connection.alias)
        .filter(kind=NOTE, channel="email", payload__outcome="email")
        .update(kind=EMAIL_SENT)
    )


def custom_events_from_notes(apps, schema_editor) -> int:
    Interaction = apps.get_model("leadcrm", "Interaction")
    connection = schema_editor.connection
    table = connection.ops.quote_name(Interaction._meta.db_table)
    if connection.vendor == "postgresql":
        sql = (
            f"UPDATE {table} SET kind = %s, payload = payload || jsonb_build_object('name', payload -> 'event') "
            "WHERE kind = %s AND channel = 'web' AND payload ->> 'via' = 'tracking' "
            "AND jsonb_typeof(payload -> 'event') = 'string'"
        )
    else:
        sql = (
            f"UPDATE {table} SET kind = %s, payload = json_set(payload, '$.name', json_extract(payload, '$.event')) "
            "WHERE kind = %s AND channel = 'web' AND json_extract(payload, '$.via') = 'tracking' "
            "AND json_type(payload, '$.event') = 'text'"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [CUSTOM_EVENT, NOTE])
        return cursor.rowcount


def forwards(apps, schema_editor) -> None:
    emails_sent_from_notes(apps, schema_editor)
    custom_events_from_notes(apps, schema_editor)


def backwards(apps, schema_editor) -> None:
    Interaction = apps.get_model("leadcrm", "Interaction")
    Interaction.objects.using(schema_editor.connection.alias).filter(
        kind__in=[EMAIL_SENT, CUSTOM_EVENT]
    ).update(kind=NOTE)


class Migration(migrations.Migration):
    dependencies = [
        ("leadcrm", "0009_interaction_lean_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="interaction",
            name="interaction_kind_valid",
        ),
        migrations.AlterField(
            model_name="interaction",
            name="kind",
            field=models.PositiveSmallIntegerField(
                choices=[
                    (1, "Page view"),
                    (2, "Form submitted"),
                    (3, "Content download"),
                    (4, "Email opened"),
                    (5, "Email link clicked"),
                    (6, "Email reply"),
                    (7, "Email bounced"),
                    (8, "Unsubscribed"),
                    (9, "Social like"),
                    (10, "Social share"),
                    (11, "Social comment"),
                    (12, "Social follow"),
                    (13, "Chat message"),
                    (14, "Call"),
                    (15, "Meeting"),
                    (16, "Note"),
                    (17, "Support ticket"),
                    (18, "Review"),
                    (19, "Purchase"),
                    (20, "Captcha failed"),
                    (21, "Email sent"),
                    (22, "Custom event"),
                ]
            ),
        ),
        migrations.AddConstraint(
            model_name="interaction",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "kind__in",
                        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22],
                    )
                ),
                name="interaction_kind_valid",
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
