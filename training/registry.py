"""The model registry: which version serves each dataset, promotion and rollback.

Every version belongs to a kind and (when trained here) a dataset. A dataset is served by
the version last promoted for it (:class:`~training.models.Promotion`), else by the
workbench-wide active version of the kind. Promoting is one row written in one
transaction; rolling back promotes the version that served before, so the history stays.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from training.models import ModelKind, ModelVersion, Promotion
from webapp.accounts.models import User
from webapp.images.models import Dataset, Task
from webapp.jobs.errors import JobError

# Which kinds a dataset of a task can be served by.
KINDS_FOR_TASK = {
    Task.DETECTION: (ModelKind.DETECTOR,),
    Task.FACES: (ModelKind.FACE_DETECTOR, ModelKind.VERIFIER),
}


class RegistryError(JobError):
    def __init__(self, message: str, *, code: str = "invalid", status: int = 400) -> None:
        super().__init__(message, code=code, status=status)


def serving(dataset: Dataset | None, kind: str = ModelKind.DETECTOR) -> ModelVersion | None:
    """What serves ``kind`` for the dataset: the version promoted for it, else the
    workbench-wide active one (uploads with no dataset get that one too)."""
    promoted = Promotion.serving(dataset.pk, kind) if dataset is not None else None
    return promoted or ModelVersion.active(kind)


def promote(version: ModelVersion, dataset: Dataset, *, user: User | None) -> Promotion:
    """Make ``version`` serve ``dataset`` (one atomic insert)."""
    allowed = KINDS_FOR_TASK.get(Task(dataset.task), ())
    if version.kind not in allowed:
        raise RegistryError(
            f"A {version.get_kind_display().lower()} cannot serve the "
            f"{dataset.get_task_display().lower()} dataset {dataset.name!r}."
        )
    with transaction.atomic():
        return Promotion.objects.create(
            dataset=dataset, kind=version.kind, version=version, promoted_by=user
        )


def rollback(dataset: Dataset, kind: str, *, user: User | None) -> Promotion:
    """Serve ``dataset`` with the version that served it before the current one."""
    with transaction.atomic():
        history = list(
            Promotion.objects.select_for_update()
            .filter(dataset=dataset, kind=kind)
            .order_by("-promoted_at", "-id")[:50]
        )
        current = history[0].version_id if history else None
        previous = next((p.version for p in history if p.version_id != current), None)
        if previous is None:
            raise RegistryError(
                f"Nothing to roll back to: no other {kind} has served {dataset.name!r}.",
                code="nothing_to_roll_back",
                status=409,
            )
        return Promotion.objects.create(
            dataset=dataset, kind=kind, version=previous, promoted_by=user
        )


def version_json(version: ModelVersion, *, detail: bool = False) -> dict[str, Any]:
    """A version as the registry lists it: metrics per split, where it serves."""
    metrics = version.metrics or {}
    splits = {
        name: {
            key: values.get(key)
            for key in ("map50", "map50_95", "precision", "recall", "f1", "eer", "auc")
            if isinstance(values, dict) and key in values
        }
        for name, values in metrics.items()
        if name in ("train", "train_val", "val", "test") and isinstance(values, dict)
    }
    body: dict[str, Any] = {
        **version.summary(),
        "dataset": version.dataset_id,
        "is_active": version.is_active,
        "created_at": version.created_at,
        "metrics": splits,
        "threshold": metrics.get("threshold"),
        "serves": sorted(_served_datasets(version)),
        "url": f"/faces/models/{version.pk}/",
    }
    if detail:
        body.update(config=version.config, class_names=version.class_names, command=version.command)
    return body


def _served_datasets(version: ModelVersion) -> set[int]:
    ids = set(Promotion.objects.filter(version=version).values_list("dataset_id", flat=True))
    return {pk for pk in ids if Promotion.serving(pk, version.kind) == version}


def serving_json(dataset: Dataset) -> dict[str, Any]:
    """What serves each kind of the dataset now."""
    kinds = KINDS_FOR_TASK.get(Task(dataset.task), ())
    now = {kind: serving(dataset, kind) for kind in kinds}
    return {
        "dataset": dataset.pk,
        "serving": {k: (v.summary() if v else None) for k, v in now.items()},
    }
