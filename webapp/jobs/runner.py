"""Carry out one job: claim it, run its handler, record the outcome on the row.

This is plain Python so it runs the same under a Celery worker, in a thread of the web
process (no broker available), or directly in a test.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from webapp.images.uploads import remove_stashed
from webapp.jobs import notify
from webapp.jobs.errors import JobError
from webapp.jobs.logs import job_context
from webapp.jobs.models import Job, JobStatus
from webapp.jobs.registry import get_job_type

logger = logging.getLogger(__name__)

_PROGRESS_INTERVAL_S = 0.5


class JobCancelled(Exception):
    """Raised inside a handler when its job was cancelled; the runner stops quietly."""


class JobContext:
    """What a handler gets: the job row and a way to report progress."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._last_write = 0.0

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.job.params or {})

    def progress(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        """Record progress in [0, 1]; raises JobCancelled if the job is no longer running."""
        now = time.monotonic()
        if not force and now - self._last_write < _PROGRESS_INTERVAL_S:
            return
        self._last_write = now
        fraction = min(max(fraction, 0.0), 1.0)
        updated = Job.objects.filter(pk=self.job.pk, status=JobStatus.RUNNING).update(
            progress=fraction, message=message[:500], heartbeat_at=timezone.now()
        )
        if updated == 0:
            raise JobCancelled()


def _claim(job_id: int) -> Job | None:
    """Take the job for this worker, or say why not (None).

    A queued job is taken. A running one is taken again only once its heartbeat has
    stopped: the broker delivers a message again when its worker died (at once, for a
    killed pool process) but also, for a long job, when its visibility timeout passes
    while the first worker is still at work. So a delivery that finds the job beating
    waits until the beat is stale (the owner died: take it) or the beat goes on for a whole
    stale window (the owner lives: drop the duplicate), and a long job never runs twice
    at once. A job that stopped too many times fails.
    """
    deadline = time.monotonic() + settings.JOB_STALE_AFTER_S + settings.JOB_HEARTBEAT_S
    while True:
        stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_S)
        claimable = Q(status=JobStatus.QUEUED) | Q(
            Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True), status=JobStatus.RUNNING
        )
        claimed = Job.objects.filter(
            claimable, pk=job_id, attempts__lt=settings.JOB_MAX_ATTEMPTS
        ).update(
            status=JobStatus.RUNNING,
            attempts=F("attempts") + 1,
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            progress=0.0,
        )
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            logger.warning("job %s no longer exists; nothing to do", job_id)
            return None
        if claimed:
            return job
        beating = job.status == JobStatus.RUNNING and job.heartbeat_at and job.heartbeat_at >= stale
        if not beating:
            break
        if time.monotonic() >= deadline:
            logger.warning("job %s runs on a live worker; duplicate delivery dropped", job_id)
            return None
        time.sleep(min(1.0, settings.JOB_HEARTBEAT_S))
    if job.status == JobStatus.RUNNING:
        _finish(
            job,
            JobStatus.FAILED,
            error=(f"The worker running this job stopped {job.attempts} times; giving up."),
        )
    return None


class _Heartbeat:
    """Beats for a running job from a thread, so a long step (an epoch) never looks dead."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"job-{job_id}-beat")

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            while not self._stop.wait(settings.JOB_HEARTBEAT_S):
                Job.objects.filter(pk=self.job_id, status=JobStatus.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
        except Exception:  # a beat lost to a database hiccup is retried at the next one
            logger.exception("heartbeat of job %s failed", self.job_id)
        finally:
            connection.close()


def _finish(job: Job, status: str, *, result: Any = None, error: str = "") -> None:
    fields: dict[str, Any] = {"status": status, "finished_at": timezone.now(), "error": error}
    if status == JobStatus.DONE:
        fields.update(progress=1.0, result=result, message="Done.")
    else:
        if result is not None:
            fields["result"] = result
        if error:
            fields["message"] = error[:500]
    Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(**fields)
    notify.job_finished(job.pk)  # a request waiting for it answers now


def execute_job(job_id: int) -> None:
    with job_context(job_id):  # every log line of the job names it
        _execute(job_id)


def _execute(job_id: int) -> None:
    job = _claim(job_id)
    if job is None:
        return
    job_type = get_job_type(job.kind)
    if job_type is None:
        _finish(job, JobStatus.FAILED, error=f"No handler for jobs of kind {job.kind!r}.")
        return
    try:
        with _Heartbeat(job.pk):
            result = job_type.handler(JobContext(job))
    except JobCancelled:
        logger.info("job %s was cancelled while running", job_id)
    except JobError as exc:
        _finish(job, JobStatus.FAILED, error=exc.message, result={"error": exc.as_dict()})
    except SoftTimeLimitExceeded:
        _finish(job, JobStatus.FAILED, error="The job ran past its time limit.")
    except Exception as exc:
        logger.exception("job %s failed", job_id)
        _finish(job, JobStatus.FAILED, error=f"Internal error: {type(exc).__name__}: {exc}")
    else:
        _finish(job, JobStatus.DONE, result=result)
    finally:
        # Uploads stashed for this job are read by now; a worker that died never gets
        # here, so a redelivered job still finds them.
        remove_stashed(job.params or {})
