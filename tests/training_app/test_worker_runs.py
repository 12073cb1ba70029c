"""A whole training run on real BCCD photos through real Redis and a real Celery worker,
whose process is killed mid-trial: the trial resumes from its last epoch on the next
worker process and the run reaches a stated floor."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.worker import Worker
from training.models import RunStatus, TrainingRun, Trial

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
# 30 epochs at 256 px on the demo's 14 training photos reach val mAP@0.5 of about 0.44 on
# this machine (8 s); the floor leaves room for other CPUs, thread counts and seeds.
EPOCHS, FLOOR = 30, 0.25


@pytest.fixture
def worker(tmp_path) -> Iterator[Worker]:
    running = Worker(tmp_path / "worker.log")
    yield running
    running.stop()


def test_a_run_survives_its_worker_dying_and_reaches_the_floor(worker, cells, labeler_api):
    body = {"dataset": cells.pk, "epochs": EPOCHS, "img_size": 256}
    started = labeler_api.post("/api/v1/training/runs/", body, format="json")
    assert started.status_code == 201, started.content
    run_id = started.json()["id"]
    trial = Trial.objects.get(run_id=run_id)
    worker.wait_for(lambda: len(Trial.objects.get(pk=trial.pk).curves) >= 5, 120, "5 epochs")
    killed = worker.child_pids()
    assert len(killed) == 1
    os.kill(killed[0], signal.SIGKILL)  # the process training the trial dies mid-run

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        run = TrainingRun.objects.get(pk=run_id)
        if run.is_finished:
            break
        time.sleep(0.5)
    trial.refresh_from_db()
    assert run.status == RunStatus.DONE, (run.message, trial.message)
    assert trial.job is not None and trial.job.attempts == 2
    # Resumed, not restarted: one curve point per epoch, in order, none done twice.
    assert [e["epoch"] for e in trial.curves] == list(range(1, EPOCHS + 1))
    assert trial.metrics["val"]["map50"] >= FLOOR
    answer = labeler_api.get(f"/api/v1/training/runs/{run_id}/").json()
    assert answer["model_version"]["id"] == run.model_version_id
    assert answer["diagnosis"]["val_error"] == pytest.approx(1 - trial.metrics["val"]["map50"])
