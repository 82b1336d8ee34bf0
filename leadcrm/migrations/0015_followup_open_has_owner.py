"""The database refuses an open follow-up without an owner (a separate migration: PostgreSQL does
not alter a table with the previous migration's updates still pending their deferred checks)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("leadcrm", "0014_followup_owner_and_escalation"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="followup",
            index=models.Index(
                condition=models.Q(("done_at__isnull", True), ("escalated_at__isnull", True)),
                fields=["due_at"],
                name="followup_escalation_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="followup",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("done_at__isnull", False), ("assigned_to__isnull", False), _connector="OR"
                ),
                name="followup_open_has_owner",
                violation_error_message="An open follow-up needs an owner.",
            ),
        ),
    ]
