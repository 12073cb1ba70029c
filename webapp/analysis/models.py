"""Error analysis: evaluations, one row per mistake, and the tags people give mistakes.

An :class:`Evaluation` is one model version measured on one split of one dataset (a Job
does the work). Each mistake it found is an :class:`ErrorCase` with the boxes (or the face
pair) and scores involved, and a score for how likely the *label* is wrong rather than the
model. People tag cases with the dataset's :class:`ErrorTag` columns ("blurry",
"incorrectly labeled", ...) in the error spreadsheet; each tag on a case is its own
:class:`ErrorCaseTag` row, so several people tagging at once never overwrite each other.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from webapp.images.models import Dataset, Image, Split

INCORRECTLY_LABELED = "incorrectly labeled"


class Evaluation(models.Model):
    model_version = models.ForeignKey(
        "training.ModelVersion", on_delete=models.CASCADE, related_name="evaluations"
    )
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="evaluations")
    split = models.CharField(max_length=16, choices=Split.choices)
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Detectors: map50, map50_95, per-class AP, precision/recall/F1 at the working threshold,
    # the confusion matrix with background, PR curves. Verifiers: error rate at the
    # threshold, false accepts and rejects, EER, ROC.
    metrics = models.JSONField(default=dict, blank=True)
    # The single error number the sheet's ceilings scale (detectors: 1 - F1 at the working
    # threshold; verifiers: the error rate at the threshold).
    error_rate = models.FloatField(null=True, blank=True)
    images = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"evaluation {self.pk}: model {self.model_version_id} on {self.split}"


class ErrorKind(models.TextChoices):
    FALSE_POSITIVE = "false_positive", "False positive on background"
    MISSED = "missed", "Missed object"
    WRONG_CLASS = "wrong_class", "Wrong class"
    POOR_LOCALIZATION = "poor_localization", "Poor localisation"
    DUPLICATE = "duplicate", "Duplicate detection"
    FALSE_ACCEPT = "false_accept", "False accept"
    FALSE_REJECT = "false_reject", "False reject"


class LabelErrorKind(models.TextChoices):
    """What kind of label mistake a case may point at (FiftyOne/ObjectLab-style)."""

    NONE = "", "None suspected"
    MISSING = "missing_label", "Possibly a missing label"
    SPURIOUS = "spurious_label", "Possibly a spurious label"
    SWAPPED = "swapped_class", "Possibly the wrong class"
    BAD_BOX = "bad_box", "Possibly a badly drawn box"


class ErrorCase(models.Model):
    """One mistake of one evaluation, with what was involved."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="cases")
    kind = models.CharField(max_length=24, choices=ErrorKind.choices, db_index=True)
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="error_cases")
    # The second photo of a verification pair (false accept / reject).
    other_image = models.ForeignKey(
        Image, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # Class names, not rows: a model can be evaluated on a dataset with other classes.
    label_class = models.CharField(max_length=100, blank=True, help_text="The true class.")
    predicted_class = models.CharField(max_length=100, blank=True)
    score = models.FloatField(null=True, blank=True, help_text="The prediction's confidence.")
    iou = models.FloatField(null=True, blank=True)
    distance = models.FloatField(null=True, blank=True, help_text="Verification pairs.")
    predicted_box = models.JSONField(null=True, blank=True)  # [x1, y1, x2, y2] pixels
    true_box = models.JSONField(null=True, blank=True)
    # How likely the label, not the model, is wrong (0..1), and which way.
    label_error_score = models.FloatField(default=0.0, db_index=True)
    label_error_kind = models.CharField(
        max_length=24, choices=LabelErrorKind.choices, default=LabelErrorKind.NONE, blank=True
    )
    # A random key fixed at creation: "a random sample of 100" is the 100 lowest keys.
    sample_key = models.FloatField(default=0.0, db_index=True)
    comment = models.TextField(blank=True)
    comment_version = models.PositiveIntegerField(default=0)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["evaluation", "sample_key", "id"]
        indexes = [models.Index(fields=["evaluation", "kind"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on image {self.image_id}"


class TagAction(models.TextChoices):
    """What a tag can set going (the notes' "what to do next" made into buttons)."""

    NONE = "", "None"
    REVIEW_QUEUE = "review_queue", "Queue its images for review"
    AUGMENT_BLUR = "augment_blur", "Blur augmentation in the next training run"
    AUGMENT_COLOR = "augment_color", "Stronger colour augmentation in the next run"
    AUGMENT_ROTATE = "augment_rotate", "Rotation augmentation in the next run"
    AUGMENT_OCCLUDE = "augment_occlude", "Occlusion augmentation in the next run"
    COLLECT_MORE = "collect_more", "Collect more data like it"


class ErrorTag(models.Model):
    """A column of a dataset's error spreadsheet."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="error_tags")
    name = models.CharField(max_length=100)
    action = models.CharField(max_length=24, choices=TagAction.choices, default="", blank=True)
    note = models.TextField(blank=True, help_text="e.g. what data to collect more of")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["dataset", "name"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="unique_error_tag_per_dataset")
        ]

    def __str__(self) -> str:
        return self.name


class ErrorCaseTag(models.Model):
    """One tag on one case (a ticked cell of the sheet)."""

    case = models.ForeignKey(ErrorCase, on_delete=models.CASCADE, related_name="tags")
    tag = models.ForeignKey(ErrorTag, on_delete=models.CASCADE, related_name="cases")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "tag"], name="one_tick_per_case_and_tag")
        ]

    def __str__(self) -> str:
        return f"{self.tag} on case {self.case_id}"
