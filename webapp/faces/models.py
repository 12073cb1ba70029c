"""People (subjects) and their faces.

A ``Subject`` belongs to a faces ``Dataset``: the people of one collection. The gallery that
recognition searches is the dataset named by ``settings.FACES_GALLERY_DATASET`` (created on
first use); an imported training set such as ORL is another faces dataset, so its 40 people
never show up as recognition answers unless the user enrolls them.

A ``Face`` is one face in one stored ``Image``: its box (null = the whole image is the face
crop), the detector's score, quality warnings, its subject (null = found but not assigned),
and its embedding under one verifier ``ModelVersion`` (recomputed by a job when the active
verifier changes).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.db import models
from django.utils import timezone

from webapp.images.models import Dataset, Image


class Subject(models.Model):
    """A person."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="subjects")
    name = models.CharField(max_length=255)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="unique_subject_per_dataset")
        ]

    def __str__(self) -> str:
        return self.name


class FaceOrigin(models.TextChoices):
    HUMAN = "human", "Labelled by a person"
    MODEL = "model", "Found by the face detector"


class FaceLabel(models.TextChoices):
    """What a person said about a found face (``person`` goes with a subject)."""

    PENDING = "pending", "Not labelled yet"
    PERSON = "person", "A known person"
    UNKNOWN = "unknown", "A person we do not know"
    NOT_FACE = "not_face", "Not a face"


class Face(models.Model):
    """One face in one image, optionally assigned to a subject, with its embedding."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="faces")
    subject = models.ForeignKey(
        Subject, null=True, blank=True, on_delete=models.CASCADE, related_name="faces"
    )
    # Pixels of the original image, xyxy; all null when the whole image is the face crop.
    x1 = models.FloatField(null=True, blank=True)
    y1 = models.FloatField(null=True, blank=True)
    x2 = models.FloatField(null=True, blank=True)
    y2 = models.FloatField(null=True, blank=True)
    score = models.FloatField(default=1.0)
    origin = models.CharField(max_length=8, choices=FaceOrigin.choices, default=FaceOrigin.MODEL)
    warnings = models.JSONField(default=list, blank=True)
    label = models.CharField(max_length=16, choices=FaceLabel.choices, default=FaceLabel.PENDING)
    # float32 little-endian bytes of the embedding made by `embedding_version`.
    embedding = models.BinaryField(null=True, blank=True)
    embedding_version = models.ForeignKey(
        "training.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["subject", "embedding_version"])]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(x1__isnull=True, y1__isnull=True, x2__isnull=True, y2__isnull=True)
                    | (models.Q(x2__gt=models.F("x1")) & models.Q(y2__gt=models.F("y1")))
                ),
                name="face_box_whole_or_positive",
            )
        ]

    def __str__(self) -> str:
        return f"face {self.pk} of image {self.image_id}"

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        """``(x1, y1, x2, y2)`` or None for the whole image."""
        if self.x1 is None or self.y1 is None or self.x2 is None or self.y2 is None:
            return None
        return (self.x1, self.y1, self.x2, self.y2)

    def set_embedding(self, vector: npt.NDArray[np.floating], version_id: int | None) -> None:
        """Store ``vector (d,)`` as float32 bytes made by model version ``version_id``."""
        self.embedding = np.asarray(vector, dtype="<f4").tobytes()
        self.embedding_version_id = version_id

    def get_embedding(self) -> npt.NDArray[np.float32] | None:
        """The stored embedding ``(d,)`` or None."""
        if self.embedding is None:
            return None
        return np.frombuffer(bytes(self.embedding), dtype="<f4").copy()
