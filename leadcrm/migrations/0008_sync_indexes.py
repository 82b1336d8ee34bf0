"""Indexes for the API's change feed: leads and follow-ups by (updated_at, id), interactions by
(created_at, id). On PostgreSQL they are built CONCURRENTLY: the interaction table can hold tens
of millions of rows, and a plain CREATE INDEX would block every write while it builds."""

from django.db import migrations, models
from django.db.migrations.operations import AddIndex


class AddIndexWithoutLocking(AddIndex):
    """AddIndex; on PostgreSQL built CONCURRENTLY (writes go on), elsewhere (SQLite) the plain way."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("leadcrm", "0007_segment_followup_updated_at"),
    ]

    operations = [
        AddIndexWithoutLocking(
            model_name="lead",
            index=models.Index(fields=["updated_at", "id"], name="lead_sync_idx"),
        ),
        AddIndexWithoutLocking(
            model_name="interaction",
            index=models.Index(fields=["created_at", "id"], name="interaction_sync_idx"),
        ),
        AddIndexWithoutLocking(
            model_name="followup",
            index=models.Index(fields=["updated_at", "id"], name="followup_sync_idx"),
        ),
    ]
