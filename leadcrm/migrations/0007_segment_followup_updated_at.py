"""Segments and follow-ups get updated_at, so the API's `updated_after` filter and sync feed see edits.

Existing rows start at their created_at (not the migration's time), so a sync that filters on
`updated_after` does not see every old row as just changed."""

import django.utils.timezone
from django.db import migrations, models
from django.db.models import F


def start_at_created_at(apps, schema_editor):
    for name in ("Segment", "FollowUp"):
        apps.get_model("leadcrm", name).objects.update(updated_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("leadcrm", "0006_consent_rows_for_existing_flags"),
    ]

    operations = [
        migrations.AddField(
            model_name="segment",
            name="updated_at",
            field=models.DateTimeField(auto_now=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="followup",
            name="updated_at",
            field=models.DateTimeField(auto_now=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.RunPython(start_at_created_at, migrations.RunPython.noop),
    ]
