"""The job runner's rules, exercised directly (the worker tests cover the Celery path)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tests.images import jpeg_bytes, png_bytes
from webapp.images.ingest import ingest_image
from webapp.jobs.logs import JobIdFilter
from webapp.jobs.models import Job, JobStatus
from webapp.jobs.registry import register
from webapp.jobs.runner import JobCancelled, JobContext, execute_job

pytestmark = pytest.mark.django_db


def test_stats_job_numbers(dataset, labeler):
    a = np.zeros((4, 5, 3), dtype=np.uint8)
    b = np.full((2, 5, 3), 255, dtype=np.uint8)
    b[..., 1] = 0
    for pixels in (a, b):
        ingest_image(png_bytes(pixels), dataset=dataset, user=labeler)
    job = Job.objects.create(kind="image_stats", dataset=dataset, user=labeler)
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.progress == 1.0
    # 20 black pixels and 10 magenta ones: R and B have mean 1/3, G mean 0.
    np.testing.assert_allclose(job.result["mean"], [1 / 3, 0, 1 / 3])
    np.testing.assert_allclose(job.result["std"], [np.sqrt(2) / 3, 0, np.sqrt(2) / 3])
    assert job.attempts == 1 and job.started_at and job.finished_at


def test_empty_dataset_fails_with_a_message(dataset, labeler):
    job = Job.objects.create(kind="image_stats", dataset=dataset, user=labeler)
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "The dataset has no images yet."


def test_unknown_kind_fails_cleanly(labeler):
    job = Job.objects.create(kind="no_such_kind", user=labeler)
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "no_such_kind" in job.error


def test_deleted_job_is_logged_and_skipped(caplog, labeler):
    other = Job.objects.create(kind="image_stats", user=labeler)
    with caplog.at_level("WARNING", logger="webapp.jobs.runner"):
        execute_job(999999)
    assert "job 999999 no longer exists" in caplog.text
    other.refresh_from_db()
    assert (other.status, other.attempts) == ("queued", 0)  # no other row was touched


def test_cancelled_job_is_not_started(dataset, labeler):
    ingest_image(jpeg_bytes(), dataset=dataset, user=labeler)
    job = Job.objects.create(kind="image_stats", dataset=dataset, user=labeler)
    assert job.cancel()
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.attempts == 0 and job.result is None


def test_progress_raises_once_cancelled(labeler):
    job = Job.objects.create(kind="image_stats", user=labeler, status=JobStatus.RUNNING)
    ctx = JobContext(job)
    ctx.progress(0.5, "half", force=True)
    job.refresh_from_db()
    assert (job.progress, job.message) == (0.5, "half")
    job.cancel()
    with pytest.raises(JobCancelled):
        ctx.progress(0.6, force=True)


def test_gives_up_after_max_attempts(labeler, settings):
    settings.JOB_MAX_ATTEMPTS = 2
    job = Job.objects.create(kind="image_stats", user=labeler, status=JobStatus.RUNNING, attempts=2)
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "The worker running this job stopped 2 times; giving up."


def test_done_job_cannot_be_cancelled(labeler):
    job = Job.objects.create(kind="image_stats", user=labeler, status=JobStatus.DONE)
    assert job.cancel() is False
    assert Job.objects.get(pk=job.pk).status == JobStatus.DONE


@pytest.mark.django_db(transaction=True)
def test_a_second_delivery_while_the_worker_beats_is_dropped(dataset, labeler):
    """The broker may deliver a long job's message again (visibility timeout): while the
    first worker still beats, the job must not run a second time."""
    from django.utils import timezone

    ingest_image(jpeg_bytes(), dataset=dataset, user=labeler)
    job = Job.objects.create(
        kind="image_stats",
        dataset=dataset,
        user=labeler,
        status=JobStatus.RUNNING,
        attempts=1,
        heartbeat_at=timezone.now(),
    )
    import threading
    import time

    stop = threading.Event()

    def first_worker_beats() -> None:  # the first worker, alive and at work
        from django.db import connection

        while not stop.wait(0.5):
            Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
        connection.close()

    beat = threading.Thread(target=first_worker_beats)
    beat.start()
    began = time.monotonic()
    try:
        execute_job(job.pk)
    finally:
        stop.set()
        beat.join()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.RUNNING, 1, None)
    assert time.monotonic() - began >= 3  # it watched a whole stale window first


def test_a_job_whose_beat_stopped_is_taken_again(dataset, labeler, settings):
    from datetime import timedelta

    from django.utils import timezone

    ingest_image(jpeg_bytes(), dataset=dataset, user=labeler)
    dead = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_S + 5)
    job = Job.objects.create(
        kind="image_stats",
        dataset=dataset,
        user=labeler,
        status=JobStatus.RUNNING,
        attempts=1,
        heartbeat_at=dead,
    )
    execute_job(job.pk)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.DONE, 2)


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_keeps_a_long_job_alive(labeler, settings):
    import time

    from webapp.jobs import registry
    from webapp.jobs.runner import _Heartbeat

    settings.JOB_HEARTBEAT_S = 1
    job = Job.objects.create(kind="image_stats", user=labeler, status=JobStatus.RUNNING)
    with _Heartbeat(job.pk):
        time.sleep(2.5)  # a long step that reports no progress
    beats = Job.objects.get(pk=job.pk).heartbeat_at
    assert beats is not None and (job.created_at < beats)
    assert registry.get_job_type("image_stats") is not None


@register("test_logs", uses_model=False)
def _logging_job(ctx: JobContext) -> dict[str, int]:
    logging.getLogger("tests.some_library").warning("from inside the job")
    return {"ok": 1}


def test_every_log_line_of_a_job_names_it(labeler):
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(f"job={getattr(record, 'job', '?')} {record.getMessage()}")

    keep = Keep()
    keep.addFilter(JobIdFilter())
    root = logging.getLogger()
    root.addHandler(keep)
    try:
        job = Job.objects.create(kind="test_logs", user=labeler)
        logging.getLogger("tests").warning("before")
        execute_job(job.pk)
        logging.getLogger("tests").warning("after")
    finally:
        root.removeHandler(keep)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert seen == ["job=- before", f"job={job.pk} from inside the job", "job=- after"]
