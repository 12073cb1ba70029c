"""`manage.py train`: the same run as the page and the API, carried out in the terminal."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from training.models import RunStatus, TrainingRun
from webapp.jobs.models import Job

# The command carries the trial out on a thread of its own, which needs committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


def test_train_runs_here_and_prints_the_diagnosis(cells):
    out = io.StringIO()
    call_command("train", "--dataset", "cells", "--epochs", "2", "--img-size", "64", stdout=out)
    run = TrainingRun.objects.get()
    text = out.getvalue()
    assert run.status == RunStatus.DONE and run.config["epochs"] == 2
    assert f"model_version={run.model_version_id}" in text.splitlines()[-1]
    assert "100.0%" in text and "val error:" in text and "train error:" in text
    # Unchanged data and config: skipped, pointing at the same version.
    again = io.StringIO()
    call_command("train", "--dataset", str(cells.pk), "--epochs", "2", "--img-size", "64",
                 stdout=again)  # fmt: skip
    assert "Skipped" in again.getvalue() and TrainingRun.objects.count() == 2


def test_train_queues_a_face_detector_run(cells):
    call_command("train", "--dataset", "cells", "--task", "face_detector", "--epochs", "1",
                 "--queue", stdout=io.StringIO())  # fmt: skip
    run = TrainingRun.objects.get()
    assert run.task == "face_detector" and run.status == RunStatus.QUEUED


def test_train_queue_only_queues(cells):
    out = io.StringIO()
    call_command("train", "--dataset", "cells", "--search", "3", "--epochs", "1", "--queue",
                 stdout=out)  # fmt: skip
    run = TrainingRun.objects.get()
    assert run.status == RunStatus.QUEUED and run.trials.count() == 2  # the coarse round
    assert Job.objects.filter(kind="train", status="queued").count() == 2
    assert f"/training/runs/{run.pk}/" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "nowhere"], "No dataset named or numbered 'nowhere'"),
        (["--dataset", "cells", "--batch-size", "24"], "power of two"),
        (["--dataset", "cells", "--task", "verifier"], "faces dataset"),
        (["--dataset", "cells", "--backbone-file", "/nonexistent.pth"], "No file"),
        (["--dataset", "cells", "--whole-image-faces", "nowhere"], "numbered 'nowhere'"),
        (
            ["--dataset", "cells", "--task", "face_detector", "--whole-image-faces", "cells"],
            "is a detection dataset, not faces",
        ),
    ],
)
def test_train_refuses_clearly(cells, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("train", *args, stdout=io.StringIO())
    assert not TrainingRun.objects.exists()
