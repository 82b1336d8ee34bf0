"""One Consent row for every consent flag that is already true (before consent records existed).

Source "import", wording "(recorded before consent records existed)", at the flag's own time (or
the lead's creation when it has none). A purpose that already has a Consent row is left alone, so
the migration can run on a database where some rows were recorded already.
"""

from __future__ import annotations

from django.db import migrations

BEFORE_RECORDS_TEXT = "(recorded before consent records existed)"
FLAGS = {"marketing_consent": "marketing", "contact_consent": "contact"}
BATCH = 5000


def add_consent_rows(apps, schema_editor) -> None:
    Lead = apps.get_model("leadcrm", "Lead")
    Consent = apps.get_model("leadcrm", "Consent")
    db = schema_editor.connection.alias
    for flag, purpose in FLAGS.items():
        leads = (
            Lead.objects.using(db)
            .filter(**{flag: True})
            .exclude(consents__purpose=purpose)
            .values_list("pk", f"{flag}_at", "created_at")
            .order_by("pk")
        )
        rows = []
        for lead_id, given_at, created_at in leads.iterator(chunk_size=BATCH):
            rows.append(
                Consent(
                    lead_id=lead_id,
                    purpose=purpose,
                    granted=True,
                    text=BEFORE_RECORDS_TEXT,
                    source="import",
                    recorded_at=given_at or created_at,
                )
            )
            if len(rows) >= BATCH:
                Consent.objects.using(db).bulk_create(rows)
                rows = []
        Consent.objects.using(db).bulk_create(rows)


def remove_consent_rows(apps, schema_editor) -> None:
    Consent = apps.get_model("leadcrm", "Consent")
    Consent.objects.using(schema_editor.connection.alias).filter(
        text=BEFORE_RECORDS_TEXT, source="import"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("leadcrm", "0005_lead_optional_consent_wording")]

    operations = [migrations.RunPython(add_consent_rows, remove_consent_rows)]
