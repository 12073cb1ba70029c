"""Model versions: every trained checkpoint the workbench knows, and which one serves."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.dispatch import Signal
from django.utils import timezone

# Sent with ``version=`` after a version became the serving one of its kind (on commit).
version_activated = Signal()


class ModelKind(models.TextChoices):
    DETECTOR = "detector", "Object detector"
    FACE_DETECTOR = "face_detector", "Face detector"
    VERIFIER = "verifier", "Face verifier"


class ModelVersion(models.Model):
    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    name = models.CharField(max_length=200)
    file = models.FileField(max_length=255)
    sha256 = models.CharField(max_length=64)
    config = models.JSONField(default=dict)
    class_names = models.JSONField(default=list)
    metrics = models.JSONField(default=dict, blank=True)  # split -> metric dict
    dataset = models.ForeignKey(
        "images.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    command = models.TextField(blank=True, help_text="The command line that trained it.")
    training_seconds = models.FloatField(null=True, blank=True)
    is_active = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(is_active=True), name="one_active_per_kind"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} {self.name}"

    def activate(self) -> None:
        """Make this the serving version of its kind in one atomic switch."""
        with transaction.atomic():
            list(ModelVersion.objects.select_for_update().filter(kind=self.kind))
            ModelVersion.objects.filter(kind=self.kind, is_active=True).exclude(pk=self.pk).update(
                is_active=False
            )
            ModelVersion.objects.filter(pk=self.pk).update(is_active=True)
            # After commit: receivers (the faces app re-embeds enrolled faces for a new
            # verifier) must see the switch, and see nothing if it rolls back.
            transaction.on_commit(lambda: version_activated.send(sender=ModelVersion, version=self))
        self.is_active = True

    @property
    def path(self) -> Path:
        """Where the checkpoint file is on this machine's disk (storage-relative name resolved)."""
        return Path(default_storage.path(str(self.file.name)))

    @classmethod
    def active(cls, kind: str) -> ModelVersion | None:
        return cls.objects.filter(kind=kind, is_active=True).first()

    @classmethod
    def register(
        cls, kind: str, save: Callable[[Path], str], *, activate: bool = False, **fields: Any
    ) -> ModelVersion:
        """Store a new checkpoint under its sha256 and record it as a version of ``kind``.

        Args:
            kind: a :class:`ModelKind`.
            save: writes the checkpoint to the path it is given and returns its sha256.
            activate: serve it now; the first version of a kind is always served.
            **fields: the other model fields (name, config, metrics, dataset, command, ...).
        """
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.safetensors"
            sha = save(path)
            stored = default_storage.save(
                f"models/{sha}.safetensors", ContentFile(path.read_bytes())
            )
        version = cls.objects.create(kind=kind, file=stored, sha256=sha, **fields)
        if activate or cls.active(kind) is None:
            version.activate()
        return version

    def summary(self) -> dict[str, Any]:
        return {"id": self.pk, "name": self.name, "kind": self.kind, "sha256": self.sha256[:12]}
