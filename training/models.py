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


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped (nothing changed)"


FINISHED_RUN = (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED)


class TrainingRun(models.Model):
    """One request to train a model on a dataset: one trial, or a random search of several.

    Trials are separate jobs, so more workers finish a search sooner; when the last trial
    of a round finishes, the run moves on (a finer round, or picking the winner, which
    becomes a model version with its diagnosis). Nothing waits in a worker for other jobs.
    """

    dataset = models.ForeignKey(
        "images.Dataset", on_delete=models.CASCADE, related_name="training_runs"
    )
    task = models.CharField(max_length=16, choices=ModelKind.choices)
    config = models.JSONField(default=dict)  # training.run_config.RunConfig.to_dict()
    config_hash = models.CharField(max_length=64, blank=True)
    data_hash = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    message = models.CharField(max_length=500, blank=True)
    start_from = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A pretrained backbone the user brought (torchvision or our own weights), by name in
    # storage; loaded without executing code.
    backbone_file = models.CharField(max_length=255, blank=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    best_trial = models.ForeignKey(
        "Trial", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    diagnosis = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"training run {self.pk} ({self.task} on {self.dataset_id})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_RUN


class Trial(models.Model):
    """One training of a run with one set of hyper-parameters, carried out by one job."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="trials")
    number = models.PositiveIntegerField()
    round = models.PositiveSmallIntegerField(default=1)  # 1 coarse, 2 fine
    params = models.JSONField(default=dict)  # the overrides of the run's config
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    curves = models.JSONField(default=list, blank=True)  # per epoch: losses, metric, lr
    metrics = models.JSONField(default=dict, blank=True)  # split -> metric dict
    objective = models.FloatField(null=True, blank=True)  # the optimising metric on val
    satisficing = models.JSONField(default=dict, blank=True)  # latency_ms, size_mb
    feasible = models.BooleanField(default=True)
    checkpoint = models.CharField(max_length=255, blank=True)  # the best weights, in storage
    state_file = models.CharField(max_length=255, blank=True)  # last training state (resume)
    message = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="one_trial_number_per_run")
        ]

    def __str__(self) -> str:
        return f"trial {self.number} of run {self.run_id}"


class Promotion(models.Model):
    """A dataset's choice of serving version for a kind; the latest row serves.

    Promoting writes a row (one atomic insert); rolling back promotes the previous version
    again, so the history of what served when is kept.
    """

    dataset = models.ForeignKey(
        "images.Dataset", on_delete=models.CASCADE, related_name="promotions"
    )
    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="promotions")
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    promoted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-promoted_at", "-id"]
        indexes = [models.Index(fields=["dataset", "kind", "-promoted_at"])]

    def __str__(self) -> str:
        return f"{self.version} serves {self.kind} for dataset {self.dataset_id}"

    @classmethod
    def serving(cls, dataset_id: int, kind: str) -> ModelVersion | None:
        """The version serving ``kind`` for the dataset, or None if it never chose one."""
        latest = (
            cls.objects.filter(dataset_id=dataset_id, kind=kind)
            .select_related("version")
            .order_by("-promoted_at", "-id")
            .first()
        )
        return latest.version if latest else None
