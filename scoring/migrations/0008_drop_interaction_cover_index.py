"""Drop scoring's covering index on leadcrm_interaction (PostgreSQL only): leadcrm's own
interaction_lead_time_idx is now (lead_id, occurred_at) INCLUDE (kind), the same index."""

from django.db import migrations


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS scoring_interaction_cover_idx")


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS scoring_interaction_cover_idx "
            "ON leadcrm_interaction (lead_id, occurred_at) INCLUDE (kind)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0007_rule_name_unique_points_bounded"),
        ("leadcrm", "0009_interaction_lean_indexes"),
    ]

    operations = [migrations.RunPython(drop_index, create_index)]
