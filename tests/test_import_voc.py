"""Importing a Pascal VOC folder through the product's own importer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from webapp.images.models import Box, Dataset, Image, SplitAssignment

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo" / "bccd"


def count_objects(folder: Path) -> int:
    return sum(xml.read_text().count("<object>") for xml in folder.glob("Annotations/*.xml"))


def test_import_demo_folder(capsys):
    call_command(
        "import_dataset", str(DEMO), "--format", "voc", "--name", "cells", "--source", "app"
    )
    out = capsys.readouterr().out
    dataset = Dataset.objects.get(name="cells")
    assert Image.objects.filter(dataset=dataset, source="app").count() == 24
    assert Box.objects.filter(image__dataset=dataset, origin="human").count() == count_objects(DEMO)
    assert sorted(dataset.classes.values_list("name", flat=True)) == ["Platelets", "RBC", "WBC"]
    # No ImageSets in the demo sample: a deterministic 60/20/20 split is made and persisted.
    splits = SplitAssignment.objects.filter(image__dataset=dataset)
    assert splits.count() == 24 and "deterministic 60/20/20" in out
    # Importing again adds nothing and keeps every split.
    before = dict(splits.values_list("image_id", "split"))
    call_command("import_dataset", str(DEMO), "--name", "cells")
    assert Image.objects.filter(dataset=dataset).count() == 24
    assert (
        dict(
            SplitAssignment.objects.filter(image__dataset=dataset).values_list("image_id", "split")
        )
        == before
    )


def test_a_box_is_stored_exactly(capsys):
    call_command("import_dataset", str(DEMO), "--name", "cells")
    image = Image.objects.get(original_name="BloodImage_00007.jpg")
    xml = (DEMO / "Annotations" / "BloodImage_00007.xml").read_text()
    first = xml.split("<bndbox>")[1]
    coords = [
        float(first.split(f"<{k}>")[1].split("<")[0]) for k in ("xmin", "ymin", "xmax", "ymax")
    ]
    assert coords in [b.xyxy for b in image.boxes.all()]
    assert image.status == "labeled"


def test_broken_files_are_reported_by_name(tmp_path, capsys):
    folder = tmp_path / "voc"
    shutil.copytree(DEMO, folder)
    (folder / "JPEGImages" / "BloodImage_00011.jpg").write_bytes(b"not a jpeg")
    xml = folder / "Annotations" / "BloodImage_00015.xml"
    xml.write_text(xml.read_text().replace("<xmin>", "<xmin>9999", 1))
    (folder / "Annotations" / "BloodImage_00016.xml").write_text("<annotation><object>")
    call_command("import_dataset", str(folder), "--name", "broken")
    err = capsys.readouterr().err
    assert "BloodImage_00011" in err and "BloodImage_00015" in err and "BloodImage_00016" in err
    assert Image.objects.filter(dataset__name="broken").count() == 22


def test_bad_arguments(tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="is not a folder"):
        call_command("import_dataset", str(tmp_path / "missing"), "--name", "x")
    with pytest.raises(CommandError, match="--source"):
        call_command("import_dataset", str(DEMO), "--name", "x", "--source", "Bad Source")
