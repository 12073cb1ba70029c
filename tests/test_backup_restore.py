"""`manage.py backup` then `restore` onto an empty install: the rows, the files, the users
with their roles, groups and API tokens all come back."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tests.images import jpeg_bytes
from webapp.accounts.models import ApiToken, User
from webapp.images.ingest import ingest_image
from webapp.images.models import Box, Dataset, Image, LabelClass

pytestmark = pytest.mark.django_db(transaction=True)


def test_backup_then_restore_onto_an_empty_install(tmp_path, labeler, tiny_detector, settings):
    dataset = Dataset.objects.create(name="cells")
    image = ingest_image(jpeg_bytes(seed=4), dataset=dataset, user=labeler, original_name="a.jpg")
    rbc = LabelClass.objects.create(dataset=dataset, name="RBC", color="#e6194b")
    Box.objects.create(image=image, label_class=rbc, x1=1, y1=2, x2=30, y2=40, origin="human")
    _, key = ApiToken.issue(labeler, "client")
    photo = default_storage.open(image.file.name).read()
    weights = default_storage.open(tiny_detector.file.name).read()
    archive = tmp_path / "backup.tar.gz"
    call_command("backup", str(archive))

    call_command("flush", interactive=False, verbosity=0)  # an empty install
    for name in (image.file.name, tiny_detector.file.name):
        default_storage.delete(name)
    call_command("restore", str(archive))

    restored = Image.objects.get(pk=image.pk)
    assert restored.dataset.name == "cells" and restored.original_name == "a.jpg"
    box = Box.objects.get(image=restored)
    assert (box.label_class.name, box.x1, box.y2) == ("RBC", 1, 40)
    assert default_storage.open(restored.file.name).read() == photo
    assert default_storage.open(tiny_detector.file.name).read() == weights
    user = User.objects.get(username=labeler.username)
    assert user.role == labeler.role and [g.name for g in user.groups.all()] == ["Labelers"]
    client = APIClient()
    assert client.get("/api/v1/jobs/", headers={"x-api-key": key}).status_code == 200

    with pytest.raises(CommandError, match="empty install"):
        call_command("restore", str(archive))  # not onto data


def test_restore_refuses_what_is_not_a_backup(tmp_path):
    bogus = tmp_path / "x.tar.gz"
    bogus.write_bytes(b"not an archive")
    with pytest.raises(CommandError, match="not a backup archive"):
        call_command("restore", str(bogus))
