"""Create jobs and hand them to the workers once the row is committed."""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from webapp.images.models import Dataset
from webapp.jobs.models import Job, JobStatus
from webapp.jobs.registry import get_job_type
from webapp.jobs.runner import execute_job

logger = logging.getLogger(__name__)


class UnknownJobKind(ValueError):
    pass


def start_job(
    kind: str, *, user: Any, dataset: Dataset | None = None, params: dict[str, Any] | None = None
) -> Job:
    job_type = get_job_type(kind)
    if job_type is None:
        raise UnknownJobKind(f"Unknown job kind {kind!r}.")
    job = Job.objects.create(
        kind=kind, user=user, dataset=dataset, params=params or {}, queue=job_type.queue
    )
    transaction.on_commit(lambda: dispatch(job))
    return job


NOT_SENT = (
    "Not sent to a worker yet: the job broker (Redis) does not answer. The job is kept and "
    "sent as soon as it is back."
)


def dispatch(job: Job) -> bool:
    """Send the job to its queue; False (the job kept, marked, sent later by the sweeper,
    ``webapp.jobs.sweeper``) when the broker does not answer."""
    if settings.JOBS_IN_PROCESS:
        threading.Thread(target=_run_in_thread, args=(job.pk,), daemon=True).start()
        return True
    from webapp.jobs.tasks import run_job

    try:
        result = run_job.apply_async(
            args=(job.pk,), queue=job.queue, retry_policy=settings.JOB_PUBLISH_RETRY_POLICY
        )
    except Exception as exc:  # kombu's OperationalError, redis' ConnectionError, a timeout
        logger.warning("job %s not sent: the broker does not answer (%s)", job.pk, exc)
        Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(message=NOT_SENT)
        return False
    Job.objects.filter(pk=job.pk).update(task_id=result.id)
    Job.objects.filter(pk=job.pk, message=NOT_SENT).update(message="")
    job.task_id = result.id
    return True


def _run_in_thread(job_id: int) -> None:
    close_old_connections()
    try:
        execute_job(job_id)
    finally:
        connection.close()


def cancel_job(job: Job) -> bool:
    was_queued = job.status == JobStatus.QUEUED
    cancelled = job.cancel()
    if cancelled:
        from webapp.jobs import notify

        notify.job_finished(job.pk)
    if cancelled and was_queued and job.task_id and not settings.JOBS_IN_PROCESS:
        # The runner would skip it anyway (the claim needs QUEUED/RUNNING); revoking just
        # saves the worker a wake-up.
        from webapp.celery import app

        app.control.revoke(job.task_id)
    return cancelled
