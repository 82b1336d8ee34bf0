"""Fewer indexes on leadcrm_interaction: every inserted event pays for each one.

- The lead foreign key's own index went: (lead, occurred_at) serves every lookup by lead.
- (lead, occurred_at) carries kind on PostgreSQL (INCLUDE), which makes scoring's separate
  covering index with the same columns redundant (scoring 0008 drops it).
- logged_by is indexed only where set (most events are not logged by a person).

On a large table this rebuilds one index (about 10 s per 10 million interactions here) inside
the migration's transaction, which blocks event writes meanwhile: run it in a quiet hour.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('leadcrm', '0008_sync_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='interaction',
            name='interaction_lead_time_idx',
        ),
        migrations.AlterField(
            model_name='interaction',
            name='lead',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='interactions', to='leadcrm.lead'),
        ),
        migrations.AlterField(
            model_name='interaction',
            name='logged_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='interaction',
            index=models.Index(fields=['lead', 'occurred_at'], include=('kind',), name='interaction_lead_time_idx'),
        ),
        migrations.AddIndex(
            model_name='interaction',
            index=models.Index(condition=models.Q(('logged_by__isnull', False)), fields=['logged_by'], name='interaction_logged_by_idx'),
        ),
    ]
