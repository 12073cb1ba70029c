"""Training runs: start one, carry out each trial as a job, move on, end with a version.

The Django side of the training app. A run is a :class:`~training.models.TrainingRun` with
its :class:`~training.run_config.RunConfig`; each trial is a ``train`` job on the `gpu`
queue (:func:`run_trial`), so a search's trials spread over every worker. When a trial
ends it calls :func:`advance`, which, with the run row locked, starts the search's finer
round once the coarse one is over, or picks the winner (the best optimising metric on
validation among the trials that meet the satisficing limits), registers it as a model
version with its metrics on every split, its working threshold and calibration, and the
diagnosis. No job ever waits for another.

A run with the same data and configuration as a finished one is skipped with a message.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from inference.face_backbones import DLIB_INSTALL, dlib_available
from training import trials as trial_work
from training.backbones import check_stored
from training.models import FINISHED_RUN, ModelKind, ModelVersion, RunStatus, TrainingRun, Trial
from training.run_config import DETECTOR_TASKS, RunConfig, RunConfigError
from training.samples import (
    class_names_of,
    face_samples,
    split_samples,
    whole_image_face_samples,
)
from training.splits import SPLIT_SCHEME
from webapp.accounts.models import User
from webapp.images.models import Box, BoxOrigin, Dataset, SplitAssignment, Task
from webapp.jobs.errors import JobError
from webapp.jobs.models import Job, JobKind
from webapp.jobs.services import cancel_job, start_job

logger = logging.getLogger(__name__)

KIND_OF_TASK = {
    "detector": ModelKind.DETECTOR,
    "face_detector": ModelKind.FACE_DETECTOR,
    "verifier": ModelKind.VERIFIER,
}
# A face detector learns from a detection dataset of face boxes (its classes become faces).
DATASET_TASK = {
    "detector": Task.DETECTION,
    "face_detector": Task.DETECTION,
    "verifier": Task.FACES,
}


class RunError(JobError):
    """A training request refused (400) or about an unknown row (404)."""

    def __init__(self, message: str, *, code: str = "invalid", status: int = 400) -> None:
        super().__init__(message, code=code, status=status)


# ---------------------------------------------------------------------------- start


def data_digest(dataset: Dataset, task: str) -> str:
    """A hash of what a run trains on: images, their splits and their labels."""
    split_of = dict(
        SplitAssignment.objects.filter(image__dataset=dataset, scheme=SPLIT_SCHEME).values_list(
            "image__sha256", "split"
        )
    )
    digest = hashlib.sha256(json.dumps(sorted(split_of.items())).encode())
    rows: list[tuple[Any, ...]]
    if task == "verifier":
        rows = list(
            dataset.images.filter(faces__subject__isnull=False).values_list(
                "sha256", "faces__subject_id", "faces__x1", "faces__y1"
            )
        )
    else:
        rows = list(
            Box.objects.filter(image__dataset=dataset, origin=BoxOrigin.HUMAN).values_list(
                "image__sha256", "label_class__name", "x1", "y1", "x2", "y2"
            )
        )
    for row in sorted(rows, key=lambda r: tuple(str(v) for v in r)):
        digest.update(repr(row).encode())
    return digest.hexdigest()


def _check_data(dataset: Dataset, config: RunConfig) -> None:
    if dataset.task != DATASET_TASK[config.task]:
        raise RunError(
            f"Dataset {dataset.name!r} is a {dataset.get_task_display().lower()} dataset: "
            f"a {config.task} trains on a {DATASET_TASK[config.task].label.lower()} dataset."
        )
    detector = config.task in DETECTOR_TASKS
    if detector:
        splits = split_samples(dataset, class_names_of(dataset))
        counts = {name: len(splits.get(name, [])) for name in ("train", "val")}
    else:
        faces = face_samples(dataset)
        counts = {name: len({f.identity for f in faces.get(name, [])}) for name in ("train", "val")}
    # A verifier learns "same or different person": it needs two people on each side.
    least = 1 if detector else 2
    missing = [name for name, n in counts.items() if n < least]
    if missing:
        what = "images" if detector else "people (at least 2 each)"
        raise RunError(
            f"Dataset {dataset.name!r} has too few {' or '.join(missing)} {what} with labels: "
            "build its splits and label some images first."
        )
    if config.whole_image_faces is not None:
        faces_dataset = Dataset.objects.filter(pk=config.whole_image_faces).first()
        if faces_dataset is None:
            raise RunError(
                f"whole_image_faces: there is no dataset {config.whole_image_faces}.",
                code="unknown_dataset",
                status=404,
            )
        try:
            whole_image_face_samples(faces_dataset, class_names_of(dataset))
        except ValueError as exc:
            raise RunError(f"whole_image_faces: {exc}.") from None
    if config.start_from is not None:
        version = ModelVersion.objects.filter(pk=config.start_from).first()
        if version is None or version.kind != KIND_OF_TASK[config.task]:
            raise RunError(
                f"start_from: there is no {config.task} version {config.start_from}.",
                code="unknown_model_version",
                status=404,
            )


def start_run(
    dataset: Dataset, config: RunConfig, *, user: User | None, backbone_file: str = ""
) -> TrainingRun:
    """Check the request, then start the run's first trials (or skip it: nothing changed).

    Args:
        backbone_file: a stored backbone (``training.backbones.store_backbone``) to start
            the torchvision backbone from.

    Raises:
        RunError: a dataset of the wrong kind, no train or val data, an unknown version.
        BackboneError: a backbone file we did not store, or one for our own backbone.
    """
    _check_data(dataset, config)
    if backbone_file:
        if config.start_from is not None:
            raise RunError("A backbone file starts a model from scratch, not a fine-tuning.")
        check_stored(backbone_file, config.backbone)
    elif config.task == "verifier" and config.backbone == "onnx":
        raise RunError(
            "backbone 'onnx' needs its file: upload it (POST /api/v1/training/backbones/)."
        )
    if config.backbone == "dlib" and not dlib_available():
        raise RunError(f"backbone 'dlib' needs dlib on the workers: {DLIB_INSTALL}")
    config_hash = hashlib.sha256(f"{config.digest()} {backbone_file}".encode()).hexdigest()
    data_hash = data_digest(dataset, config.task)
    same = TrainingRun.objects.filter(
        dataset=dataset,
        task=config.task,
        status=RunStatus.DONE,
        config_hash=config_hash,
        data_hash=data_hash,
    ).first()
    fields = {
        "dataset": dataset,
        "task": config.task,
        "config": config.to_dict(),
        "config_hash": config_hash,
        "data_hash": data_hash,
        "created_by": user,
        "start_from_id": config.start_from,
        "backbone_file": backbone_file,
    }
    if same is not None:
        return TrainingRun.objects.create(
            **fields,
            status=RunStatus.SKIPPED,
            finished_at=timezone.now(),
            model_version=same.model_version,
            message=(
                f"Skipped: the data and the configuration are those of run #{same.pk}"
                + (f" (model version #{same.model_version_id})." if same.model_version_id else ".")
            ),
        )
    with transaction.atomic():
        run = TrainingRun.objects.create(**fields, message="Waiting for a worker.")
        for params in trial_work.first_round(config):
            _start_trial(run, params, round_=1)
    return run


def _start_trial(run: TrainingRun, params: dict[str, Any], *, round_: int) -> Trial:
    number = (run.trials.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    trial = Trial.objects.create(run=run, number=number, round=round_, params=params)
    job = start_job(
        JobKind.TRAIN,
        user=run.created_by,
        dataset=run.dataset,
        params={"run": run.pk, "trial": trial.pk},
    )
    Trial.objects.filter(pk=trial.pk).update(job=job)
    return trial


# ---------------------------------------------------------------------------- one trial


def run_trial(trial_id: int, report: trial_work.Report) -> dict[str, Any]:
    """Carry out one trial (the ``train`` job's body) and move its run on."""
    trial = Trial.objects.select_related("run__dataset").filter(pk=trial_id).first()
    if trial is None:
        raise RunError("The trial no longer exists.", code="not_found", status=404)
    run = trial.run
    if run.is_finished:
        return {"trial": trial.pk, "skipped": f"run {run.pk} is {run.status}"}
    now = timezone.now()
    Trial.objects.filter(pk=trial.pk).update(status=RunStatus.RUNNING, started_at=now)
    TrainingRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, message="Training."
    )
    config = RunConfig.from_dict(run.config).with_overrides(trial.params)
    try:
        outcome = trial_work.train(trial, config, report)
    except trial_work.TrialCancelled:
        _end_trial(trial, RunStatus.CANCELLED, message="Cancelled.")
        raise
    except (RunConfigError, ValueError, FloatingPointError) as exc:
        # A refused setting, too little data, a diverged loss: the run goes on without it.
        _end_trial(trial, RunStatus.FAILED, message=str(exc))
        advance(run.pk)
        raise RunError(f"Trial {trial.number} failed: {exc}") from None
    except Exception as exc:
        # Anything else is a bug: the trial says so and the run still finishes.
        _end_trial(trial, RunStatus.FAILED, message=f"{type(exc).__name__}: {exc}")
        advance(run.pk)
        raise
    _end_trial(trial, RunStatus.DONE, **outcome.fields(), message=outcome.summary)
    advance(run.pk)
    return {"run": run.pk, "trial": trial.pk, "objective": outcome.objective}


def _end_trial(trial: Trial, status: str, **fields: Any) -> None:
    fields["message"] = str(fields.get("message", ""))[:500]
    Trial.objects.filter(pk=trial.pk).update(status=status, finished_at=timezone.now(), **fields)
    state = Trial.objects.filter(pk=trial.pk).values_list("state_file", flat=True).first()
    if status == RunStatus.DONE and state and default_storage.exists(state):
        # Its best weights are stored; the resumable state (weights, optimiser, random
        # states) is only needed while it may still be redelivered. A cancelled trial keeps it.
        default_storage.delete(state)


# ---------------------------------------------------------------------------- moving on


def advance(run_id: int) -> None:
    """After a trial: wait for the round, start the finer one, or finish the run."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        if run.is_finished:
            return
        trials = list(run.trials.all())
        if any(t.status in (RunStatus.QUEUED, RunStatus.RUNNING) for t in trials):
            done = sum(t.status in FINISHED_RUN for t in trials)
            TrainingRun.objects.filter(pk=run.pk).update(
                message=f"{done} of {len(trials)} trials done."
            )
            return
        config = RunConfig.from_dict(run.config)
        finer = trial_work.next_round(config, trials)
        if finer:
            for params in finer:
                _start_trial(run, params, round_=2)
            TrainingRun.objects.filter(pk=run.pk).update(
                message=f"Coarse round done; {len(finer)} finer trials started."
            )
            return
        _finish_run(run, config, trials)


def _finish_run(run: TrainingRun, config: RunConfig, trials: list[Trial]) -> None:
    done = [t for t in trials if t.status == RunStatus.DONE]
    best, reasons = trial_work.choose(config, done)
    if best is None:
        TrainingRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED,
            finished_at=timezone.now(),
            message=("No trial finished." if not done else "No trial met the limits: ")
            + "; ".join(reasons)[:400],
        )
        return
    version = _register(run, best, config)
    diagnosis = trial_work.diagnose(best, run.dataset.human_error, config)
    TrainingRun.objects.filter(pk=run.pk).update(
        status=RunStatus.DONE,
        finished_at=timezone.now(),
        best_trial=best,
        model_version=version,
        diagnosis=diagnosis,
        message=f"Trial {best.number} won: model version #{version.pk}.",
    )


def training_seconds(curves: list[dict[str, Any]]) -> float:
    """A trial's training time from its curve: each point holds the seconds elapsed since
    its net's training began (an ensemble's members start again from 0)."""
    total, last = 0.0, 0.0
    for point in curves:
        elapsed = float(point.get("seconds", 0.0))
        if elapsed < last:  # the next member began
            total += last
        last = elapsed
    return total + last


def _register(run: TrainingRun, trial: Trial, config: RunConfig) -> ModelVersion:
    data = default_storage.open(trial.checkpoint).read()
    kind = KIND_OF_TASK[config.task]

    def save(path: Path) -> str:
        path.write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    seconds = training_seconds(trial.curves)
    return ModelVersion.register(
        kind,
        save,
        name=f"{run.dataset.name} {ModelKind(kind).label.lower()} (run {run.pk})",
        config=trial.metrics.get("_model_config", {}),
        class_names=trial.metrics.get("_class_names", []),
        metrics={k: v for k, v in trial.metrics.items() if not k.startswith("_")},
        dataset=run.dataset,
        command=f"training run #{run.pk}, trial {trial.number}: {json.dumps(trial.params)}",
        training_seconds=seconds or None,
        created_by=run.created_by,
    )


# ---------------------------------------------------------------------------- cancel


def cancel_run(run: TrainingRun) -> bool:
    """Stop the run: queued trials never start, running ones stop at their next batch and
    keep what they saved. False if it had already finished."""
    with transaction.atomic():
        updated = (
            TrainingRun.objects.filter(pk=run.pk)
            .exclude(status__in=FINISHED_RUN)
            .update(status=RunStatus.CANCELLED, finished_at=timezone.now(), message="Cancelled.")
        )
        if not updated:
            return False
        open_trials = run.trials.filter(status__in=(RunStatus.QUEUED, RunStatus.RUNNING))
        jobs = list(Job.objects.filter(pk__in=open_trials.values("job_id")))
        open_trials.filter(status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now()
        )
    for job in jobs:
        cancel_job(job)
    return True
