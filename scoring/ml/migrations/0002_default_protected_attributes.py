from django.db import migrations

DEFAULTS = (
    "gender", "sex", "age", "date_of_birth", "birth_date", "birthday", "nationality", "ethnicity",
    "race", "religion", "marital_status", "disability", "sexual_orientation",
)


def add_defaults(apps, schema_editor):
    ProtectedAttribute = apps.get_model("ml", "ProtectedAttribute")
    for name in DEFAULTS:
        ProtectedAttribute.objects.get_or_create(name=name, defaults={"note": "default list"})
    apps.get_model("ml", "MlSettings").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("ml", "0001_initial")]
    operations = [migrations.RunPython(add_defaults, migrations.RunPython.noop)]
