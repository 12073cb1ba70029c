"""Datasets, their label classes and images."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,31}$",
    "Use 1-32 lowercase letters, digits, '-' or '_' (for example 'web' or 'app').",
)


class Task(models.TextChoices):
    DETECTION = "detection", "Object detection"
    FACES = "faces", "Faces"


class Dataset(models.Model):
    name = models.CharField(max_length=100, unique=True)
    task = models.CharField(max_length=16, choices=Task.choices, default=Task.DETECTION)
    description = models.TextField(blank=True)
    # The distribution validation and test sets are drawn from (the notes' "target").
    target_source = models.CharField(
        max_length=32, blank=True, validators=[slug_validator], default=""
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("dataset-detail", args=[self.pk])


class LabelClass(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="classes")
    name = models.CharField(max_length=100)
    color = models.CharField(max_length=7, default="#e6194b")

    class Meta:
        ordering = ["dataset", "name"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="unique_class_per_dataset")
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name}/{self.name}"


class ImageStatus(models.TextChoices):
    NEW = "new", "New"
    PREDICTED = "predicted", "Predicted"
    LABELED = "labeled", "Labeled"
    REVIEWED = "reviewed", "Reviewed"


class Image(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(max_length=255)
    thumbnail = models.FileField(max_length=255, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, db_index=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveBigIntegerField(default=0)
    format = models.CharField(max_length=16, blank=True)
    source = models.CharField(max_length=32, default="upload", validators=[slug_validator])
    status = models.CharField(max_length=16, choices=ImageStatus.choices, default=ImageStatus.NEW)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "sha256"], name="unique_image_per_dataset")
        ]
        indexes = [models.Index(fields=["dataset", "source", "status"])]

    def __str__(self) -> str:
        return self.original_name or f"image {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("image-detail", args=[self.pk])
