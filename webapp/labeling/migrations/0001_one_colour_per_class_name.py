"""Classes of the same name get the same colour in every dataset (the oldest one's)."""

from django.db import migrations


def one_colour_per_name(apps, schema_editor):
    LabelClass = apps.get_model("images", "LabelClass")
    first: dict[str, str] = {}
    for label in LabelClass.objects.order_by("pk"):
        key = " ".join(label.name.split()).casefold()
        color = first.setdefault(key, label.color)
        if label.color != color:
            LabelClass.objects.filter(pk=label.pk).update(color=color)


class Migration(migrations.Migration):
    dependencies = [("images", "0004_labeling")]

    operations = [migrations.RunPython(one_colour_per_name, migrations.RunPython.noop)]
