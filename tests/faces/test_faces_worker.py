"""Face jobs through real Redis on a real Celery worker process (no eager mode, no mocks)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.worker import Worker
from webapp.faces import enrollment
from webapp.faces.models import Face
from webapp.jobs.models import Job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_enroll_and_recognize_run_on_the_gpu_queue_worker(
    tmp_path, labeler_api, tiny_verifier, orl, settings
):
    carol = enrollment.create_subject("Carol")
    worker = Worker(tmp_path / "worker.log")
    try:
        enrolled = labeler_api.post(
            f"/api/v1/faces/subjects/{carol.pk}/faces/?wait=60",
            {"image": SimpleUploadedFile("c.pgm", orl(7, 1))},
            format="multipart",
        )
        recognized = labeler_api.post(
            "/api/v1/faces/recognize/?wait=60",
            {"image": SimpleUploadedFile("q.pgm", orl(7, 1))},
            format="multipart",
        )
    finally:
        worker.stop()
    assert enrolled.status_code == 201, enrolled.json()
    face = Face.objects.get()
    assert enrolled.json()["faces"][0]["id"] == face.pk
    assert face.embedding_version_id == tiny_verifier.pk
    assert recognized.status_code == 200, recognized.json()
    assert recognized.json()["faces"][0]["label"] == "Carol"
    for job in Job.objects.all():
        assert job.queue == settings.JOB_QUEUE_GPU and job.task_id and job.status == "done"
    assert sorted(Job.objects.values_list("kind", flat=True)) == ["enroll", "recognize"]
