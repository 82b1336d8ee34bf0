"""Follow-ups: escalation marks, and an owner for every open follow-up that has none.

The owner comes from the routing rule's promise branch as far as a migration can follow it (no one
is on duty during a migration): the lead's active owner, else whoever scheduled it (if active),
else the active manager (or superuser) with the fewest open follow-ups. The next migration then
makes the database refuse an open follow-up without an owner.
"""

from django.db import migrations, models
from django.db.models import Count, Q


def assign_owners(apps, schema_editor):
    FollowUp = apps.get_model("leadcrm", "FollowUp")
    User = apps.get_model("auth", "User")
    unowned = FollowUp.objects.filter(done_at__isnull=True, assigned_to__isnull=True)
    if not unowned.exists():
        return
    # Set-based: one UPDATE per branch of the rule.
    for row in unowned.filter(lead__owner__is_active=True).values("lead__owner_id").annotate(n=Count("pk")):
        unowned.filter(lead__owner_id=row["lead__owner_id"]).update(assigned_to_id=row["lead__owner_id"])
    for row in unowned.filter(created_by__is_active=True).values("created_by_id").annotate(n=Count("pk")):
        unowned.filter(created_by_id=row["created_by_id"]).update(assigned_to_id=row["created_by_id"])
    if not unowned.exists():
        return
    manager = (
        User.objects.filter(Q(groups__name="Manager") | Q(is_superuser=True), is_active=True)
        .values("pk")
        .annotate(open=Count("follow_ups", filter=Q(follow_ups__done_at__isnull=True), distinct=True))
        .order_by("open", "pk")
        .first()
    ) or User.objects.filter(is_active=True).order_by("pk").values("pk").first()
    if manager is None:
        raise RuntimeError(
            "Open follow-ups without an owner exist but no active user can own them: "
            "create a manager (manage.py createsuperuser) and migrate again."
        )
    unowned.update(assigned_to_id=manager["pk"])


class Migration(migrations.Migration):
    dependencies = [
        ("leadcrm", "0013_playbook_canned_replies"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.AddField(
            model_name="followup",
            name="escalated_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="followup",
            name="overdue_alerted_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(assign_owners, migrations.RunPython.noop),
    ]
