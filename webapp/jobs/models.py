"""Every asynchronous thing a user starts is a Job row they can watch.

Celery carries jobs out; this table remembers them. Status changes are conditional
UPDATEs so a worker and a person cancelling never overwrite each other.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class JobKind(models.TextChoices):
    IMAGE_STATS = "image_stats", "Image statistics"
    DETECT = "detect", "Detect objects"
    VERIFY = "verify", "Verify faces"
    ENROLL = "enroll", "Enroll faces"
    RECOGNIZE = "recognize", "Recognize faces"
    REEMBED = "reembed", "Re-embed enrolled faces"
    EVALUATE = "evaluate", "Evaluate model"
    TRAIN = "train", "Train model"
    IMPORT = "import", "Import labelled data"
    FIND_FACES = "find_faces", "Find faces in a photo"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class Job(models.Model):
    kind = models.CharField(max_length=32, choices=JobKind.choices)
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    dataset = models.ForeignKey(
        "images.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    queue = models.CharField(max_length=64, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("job-detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def cancel(self) -> bool:
        """Cancel if queued or running. The worker notices at its next progress report."""
        updated = Job.objects.filter(pk=self.pk, status__in=ACTIVE_STATUSES).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now(), message="Cancelled."
        )
        self.refresh_from_db()
        return updated == 1

    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()

    def as_summary(self) -> dict[str, Any]:
        return {"id": self.pk, "kind": self.kind, "status": self.status, "progress": self.progress}
