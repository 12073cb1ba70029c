"""Training runs: trials as jobs, measured on every split, the winner registered with its
diagnosis; searches, limits, skips, cancels, fine-tuning with frozen blocks, resuming."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from tests.training_app.conftest import run_jobs
from training import runs
from training.models import ModelVersion, RunStatus, TrainingRun, Trial
from training.run_config import RunConfig, SearchSpec
from webapp.images.models import Dataset, Task
from webapp.jobs.models import Job

pytestmark = pytest.mark.django_db
SMALL = {"epochs": 3, "img_size": 128}


def test_a_run_trains_measures_registers_and_diagnoses(cells, labeler):
    run = runs.start_run(cells, RunConfig(**SMALL), user=labeler)
    job = Job.objects.get(kind="train")
    assert job.queue.endswith("gpu") and job.params == {"run": run.pk, "trial": run.trials.get().pk}
    run_jobs()
    run.refresh_from_db()
    assert run.status == RunStatus.DONE, run.message
    trial = run.trials.get()
    assert [e["epoch"] for e in trial.curves] == [1, 2, 3]
    assert all(0 <= e["map50"] <= 1 for e in trial.curves)
    assert {"train", "val", "test"} <= set(trial.metrics)
    assert trial.satisficing["latency_ms"] > 0 and trial.satisficing["size_mb"] > 0
    version = run.model_version
    assert version.kind == "detector" and version.dataset == cells
    assert version.metrics["val"]["map50"] == pytest.approx(trial.objective)
    assert "_model_config" not in version.metrics and version.config["img_size"] == 128
    assert version.class_names == ["Platelets", "RBC", "WBC"]
    # Elapsed seconds at the last epoch (each point holds the time since training began).
    assert version.training_seconds == pytest.approx(trial.curves[-1]["seconds"])
    assert runs.training_seconds([{"seconds": 2}, {"seconds": 5}, {"seconds": 1}]) == 6
    diagnosis = run.diagnosis
    assert diagnosis["train_error"] == pytest.approx(1 - trial.metrics["train"]["map50"])
    assert trial.objective is not None
    assert diagnosis["val_error"] == pytest.approx(1 - trial.objective)
    assert diagnosis["variance"] == pytest.approx(
        diagnosis["val_error"] - diagnosis["train_error"], abs=1e-5
    )
    assert diagnosis["verdict"] in {
        "bias",
        "variance",
        "overfitting to validation",
        "no clear problem",
    }
    # Nothing changed: the same request is skipped and points at the same version.
    again = runs.start_run(cells, RunConfig(**SMALL), user=labeler)
    assert again.status == RunStatus.SKIPPED and again.model_version == version
    assert f"run #{run.pk}" in again.message and not again.trials.exists()


def test_a_search_runs_a_coarse_then_a_finer_round_and_the_best_wins(cells, labeler):
    config = RunConfig(epochs=1, img_size=128, search=SearchSpec(trials=3, rounds=2, seed=5))
    run = runs.start_run(cells, config, user=labeler)
    assert run.trials.count() == 2  # the coarse round
    run_jobs()
    run.refresh_from_db()
    trials = list(run.trials.order_by("number"))
    assert [t.round for t in trials] == [1, 1, 2] and run.status == RunStatus.DONE
    # The finer round samples near the coarse round's best (a tenth of the log range
    # either side of it: 10**0.15 is a factor 1.42).
    coarse_best = max(trials[:2], key=lambda t: t.objective or 0.0).params["learning_rate"]
    assert coarse_best / 1.43 <= trials[2].params["learning_rate"] <= coarse_best * 1.43
    best = max(trials, key=lambda t: t.objective or 0.0)
    assert run.best_trial == best and run.model_version.metrics["val"]["map50"] == pytest.approx(
        best.objective
    )
    assert all(3e-4 <= t.params["learning_rate"] <= 1e-2 for t in trials)


def test_no_trial_meeting_the_limits_fails_the_run_and_says_why(cells, labeler):
    config = RunConfig(epochs=1, img_size=128, satisficing={"latency_ms": 0.001})
    run = runs.start_run(cells, config, user=labeler)
    run_jobs()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "latency_ms" in run.message
    assert run.model_version is None and not ModelVersion.objects.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "verifier"}, "detection dataset"),
        ({"start_from": 987654}, "no detector version 987654"),
    ],
)
def test_requests_that_cannot_run_are_refused_before_anything(cells, labeler, change, message):
    with pytest.raises(runs.RunError, match=message):
        runs.start_run(cells, RunConfig(**{**SMALL, **change}), user=labeler)
    assert not TrainingRun.objects.exists() and not Job.objects.exists()


def test_a_dataset_without_splits_is_refused(labeler):
    empty = Dataset.objects.create(name="empty", task=Task.DETECTION)
    with pytest.raises(runs.RunError, match="too few train or val images"):
        runs.start_run(empty, RunConfig(**SMALL), user=labeler)


def test_cancelling_stops_queued_trials(cells, labeler):
    run = runs.start_run(cells, RunConfig(epochs=1, search=SearchSpec(trials=4)), user=labeler)
    assert runs.cancel_run(run) is True
    run_jobs()
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert set(run.trials.values_list("status", flat=True)) == {RunStatus.CANCELLED}
    assert set(Job.objects.values_list("status", flat=True)) == {"cancelled"}
    assert runs.cancel_run(run) is False


def test_fine_tuning_from_a_version_keeps_the_frozen_blocks(cells, labeler):
    import torch

    from inference.yolo import load_detector

    first = runs.start_run(cells, RunConfig(**SMALL), user=labeler)
    run_jobs()
    first.refresh_from_db()
    source = first.model_version
    tuned = runs.start_run(
        cells,
        RunConfig(epochs=2, img_size=128, start_from=source.pk, freeze_blocks=2),
        user=labeler,
    )
    run_jobs()
    tuned.refresh_from_db()
    assert tuned.status == RunStatus.DONE, tuned.message
    before = load_detector(source.path, device=torch.device("cpu")).state_dict()
    after = load_detector(tuned.model_version.path, device=torch.device("cpu")).state_dict()
    frozen = [k for k in before if k.startswith(("stem.", "stage8."))]
    trained = [k for k in before if k.startswith("heads.") and before[k].dtype.is_floating_point]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in trained)
    assert tuned.trials.get().metrics["_transfer"]["frozen"] == ["stem", "stage8"]


def test_a_trial_whose_worker_died_resumes_from_its_last_epoch(cells, labeler, settings):
    from datetime import timedelta

    from django.utils import timezone

    from training import trials as trial_work
    from webapp.jobs.runner import execute_job

    run = runs.start_run(cells, RunConfig(epochs=4, img_size=128), user=labeler)
    job = Job.objects.get(kind="train")

    class WorkerDied(BaseException):
        """Not an Exception: like a SIGKILL, nothing below catches it."""

    real = trial_work._progress

    def dying(trial, report, curves, **kwargs):
        inner = real(trial, report, curves, **kwargs)

        def on_progress(p):
            inner(p)
            if p.phase == "eval" and p.epoch == 1:
                raise WorkerDied()

        return on_progress

    setattr(trial_work, "_progress", dying)  # noqa: B010 (mypy: a different signature)
    try:
        with pytest.raises(WorkerDied):
            execute_job(job.pk)
    finally:
        setattr(trial_work, "_progress", real)  # noqa: B010
    trial = Trial.objects.get(run=run)
    assert [e["epoch"] for e in trial.curves] == [1, 2] and trial.status == RunStatus.RUNNING
    state = trial.state_file
    assert state.startswith(f"runs/{run.pk}/trial-1-") and default_storage.exists(state)
    # The broker delivers it again once the dead worker's beat is stale.
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_S + 1)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    execute_job(job.pk)
    job.refresh_from_db()
    trial.refresh_from_db()
    assert job.status == "done" and job.attempts == 2
    assert [e["epoch"] for e in trial.curves] == [1, 2, 3, 4]  # epochs 1-2 were not redone
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert trial.state_file == state and not default_storage.exists(state)  # done: removed


def test_a_state_file_left_by_another_database_is_not_resumed(cells, labeler):
    # Media kept while the database was reset: run and trial numbers start again at 1.
    run = runs.start_run(cells, RunConfig(epochs=1, img_size=64), user=labeler)
    for name in (f"runs/{run.pk}/trial-1.state", f"runs/{run.pk}/trial-1-0.state"):
        stale = Path(default_storage.path(name))
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_bytes(b"not this trial's state")
    run_jobs()
    run.refresh_from_db()
    assert run.status == RunStatus.DONE, run.trials.get().message
