"""A covering index for the scoring aggregate on leadcrm_interaction (PostgreSQL only).

Interaction belongs to the leadcrm app; the index is the scoring aggregate's need, so it is created
here with IF NOT EXISTS. (lead_id, occurred_at) INCLUDE (kind) serves the per-chunk range scan
`lead_id BETWEEN … AND occurred_at >= …` and lets rules without a URL pattern run index-only.
"""

from django.db import migrations


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS scoring_interaction_cover_idx "
            "ON leadcrm_interaction (lead_id, occurred_at) INCLUDE (kind)"
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS scoring_interaction_cover_idx")


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0002_rules_bands_history"),
        ("leadcrm", "0002_roles"),
    ]

    operations = [migrations.RunPython(create_index, drop_index)]
