"""Jobs go through real Redis to a real Celery worker process, which writes the Job row.

No eager mode and no mocks: the worker is a separate process reading the test database.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

import tests.worker_app  # noqa: F401  (registers the test-only job kinds here too)
from tests.images import jpeg_bytes
from tests.worker import Worker
from webapp.jobs.models import Job, JobStatus
from webapp.jobs.services import start_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def worker(tmp_path) -> Iterator[Worker]:
    running = Worker(tmp_path / "worker.log")
    yield running
    running.stop()


def wait_for_status(job_id: int, statuses: set[str], timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.status in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {Job.objects.get(pk=job_id).status}")


def test_image_stats_job_runs_on_the_worker(worker, labeler_api, dataset, settings):
    uploads = [jpeg_bytes(40, 30, seed=s) for s in range(3)]
    for i, data in enumerate(uploads):
        response = labeler_api.post(
            "/api/v1/images/",
            {"file": SimpleUploadedFile(f"{i}.jpg", data), "dataset": dataset.pk},
            format="multipart",
        )
        assert response.status_code == 201
    created = labeler_api.post("/api/v1/jobs/", {"kind": "image_stats", "dataset": dataset.pk})
    assert created.status_code == 201
    job = wait_for_status(created.json()["id"], {JobStatus.DONE, JobStatus.FAILED})
    assert job.status == JobStatus.DONE, job.error
    assert job.queue == settings.JOB_QUEUE_DEFAULT and job.task_id

    # The reference: decode the same JPEGs and compute the statistics directly.
    import io

    pixels = np.concatenate(
        [
            np.asarray(PILImage.open(io.BytesIO(d)).convert("RGB")).reshape(-1, 3) / 255.0
            for d in uploads
        ]
    )
    np.testing.assert_allclose(job.result["mean"], pixels.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(job.result["std"], pixels.std(axis=0), atol=1e-9)
    assert job.result["pixels"] == 3 * 40 * 30 and job.progress == 1.0
    api_view = labeler_api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert api_view["status"] == "done" and api_view["result"]["images"] == 3


def test_running_job_can_be_cancelled(worker, labeler, labeler_api):
    job = start_job("test_sleep", user=labeler, params={"steps": 200, "seconds": 0.1})
    wait_for_status(job.pk, {JobStatus.RUNNING})
    response = labeler_api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    time.sleep(1.0)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.progress < 1.0
    again = labeler_api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_cancellable"


def test_job_is_redelivered_when_its_worker_process_dies(worker, labeler):
    job = start_job("test_sleep", user=labeler, params={"steps": 12, "seconds": 0.25})
    wait_for_status(job.pk, {JobStatus.RUNNING})
    worker.wait_for(lambda: Job.objects.get(pk=job.pk).progress > 0.1, 30, "progress")
    children = worker.child_pids()
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)  # the process running the task dies mid-job
    done = wait_for_status(job.pk, {JobStatus.DONE, JobStatus.FAILED}, timeout=90)
    assert done.status == JobStatus.DONE, done.error
    assert done.attempts == 2
    assert done.result["attempt"] == 2 and done.result["pid"] != children[0]
