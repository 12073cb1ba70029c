"""Stored files go when nothing references them: an image's file and thumbnail are stored
once by content (several datasets may hold the same photo), and removed, after the
deleting transaction commits, once no image row has that content any more. Deleting a
dataset deletes its images, so its files go with it unless another dataset holds them."""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from webapp.images.models import Image


@receiver(post_delete, sender=Image, dispatch_uid="images-remove-unreferenced-files")
def _remove_unreferenced(sender: Any, instance: Image, **_: Any) -> None:
    digest = instance.sha256
    paths = [f.name for f in (instance.file, instance.thumbnail) if f and f.name]

    def remove() -> None:
        if Image.objects.filter(sha256=digest).exists():
            return
        for path in paths:
            if default_storage.exists(path):
                default_storage.delete(path)

    transaction.on_commit(remove)
