"""Datasets, their label classes and images."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from training.splits import SPLIT_SCHEME

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
    # Human-level error on this data (0..1, on the training runs' error measure): the
    # diagnosis measures avoidable bias from it. Unknown until someone enters it.
    human_error = models.FloatField(null=True, blank=True)

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
        verbose_name_plural = "label classes"
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="unique_class_per_dataset")
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name}/{self.name}"


class ImageStatus(models.TextChoices):
    """new -> (predicted) -> labeled -> reviewed; a reviewer may send it back as needs_fix."""

    NEW = "new", "New"
    PREDICTED = "predicted", "Predicted"
    LABELED = "labeled", "Labeled"
    NEEDS_FIX = "needs_fix", "Needs fix"
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
    # Bumped by every change of the human labels: a save names the version it edited, so
    # two people editing one image never silently overwrite each other (409 on a stale one).
    labels_version = models.PositiveIntegerField(default=0)
    labeled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    labeled_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # The reviewer's note when sending the image back (status needs_fix); the labeler sees it.
    review_comment = models.TextField(blank=True)

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


class BoxOrigin(models.TextChoices):
    HUMAN = "human", "Human"
    MODEL = "model", "Model"


class Box(models.Model):
    """One object: xyxy in pixels of the stored image. Human boxes are ground truth."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="boxes")
    label_class = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="boxes")
    x1 = models.FloatField()
    y1 = models.FloatField()
    x2 = models.FloatField()
    y2 = models.FloatField()
    origin = models.CharField(max_length=8, choices=BoxOrigin.choices, default=BoxOrigin.HUMAN)
    model_version = models.ForeignKey(
        "training.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="boxes",
    )
    score = models.FloatField(null=True, blank=True)
    # A human box made by accepting a model's suggestion remembers where it came from;
    # unlike `model_version` (the predictor of a model box), deleting that version keeps it.
    suggested_by = models.ForeignKey(
        "training.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    suggested_score = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["image", "-score", "id"]
        verbose_name_plural = "boxes"
        indexes = [models.Index(fields=["image", "origin"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(x2__gt=models.F("x1")) & models.Q(y2__gt=models.F("y1")),
                name="box_has_area",
            )
        ]

    def __str__(self) -> str:
        return f"{self.label_class.name} [{self.x1:.0f},{self.y1:.0f},{self.x2:.0f},{self.y2:.0f}]"

    @property
    def xyxy(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    TRAIN_VAL = "train_val", "Train-val"
    VAL = "val", "Validation"
    TEST = "test", "Test"


class SplitAssignment(models.Model):
    """Which split an image belongs to under a scheme; persisted, never reshuffled."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="splits")
    scheme = models.CharField(max_length=32, default=SPLIT_SCHEME)
    split = models.CharField(max_length=16, choices=Split.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "scheme"], name="one_split_per_scheme")
        ]

    def __str__(self) -> str:
        return f"{self.image_id}:{self.scheme}={self.split}"


class LabelChange(models.Model):
    """One change of an image's human labels: who, when, the boxes before and after.

    The history behind ``Image.labels_version``; error analysis counts the changes made
    after an evaluation as the fixes that flowed back from it.
    """

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="label_changes")
    version = models.PositiveIntegerField(help_text="labels_version after this change")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    action = models.CharField(max_length=32)
    before = models.JSONField(default=list, blank=True)
    after = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "version"], name="one_change_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.action} of image {self.image_id} (v{self.version})"
