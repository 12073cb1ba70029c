"""Waiting for a job from a request, and turning the job into the request's answer.

The detection API, the faces API (native and CompreFace-compatible) and the faces pages
start a job, wait for it up to a limit, and answer with its result, with 202 and the job
while it still runs, or with the error the job recorded (:class:`JobError`). This module
is the one place that does each of those.

Waiting polls the job row with a growing interval (20 ms doubling to 250 ms): quick
answers stay quick, and a request that waits a minute reads the row about 250 times, not
3,000.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from webapp.api.errors import ApiError
from webapp.api.serializers import JobSerializer
from webapp.jobs import notify
from webapp.jobs.errors import JobError
from webapp.jobs.models import Job, JobStatus

# The longest a request waits for its job; short of a proxy's usual 120 s timeout.
MAX_WAIT_S = 60.0
# Pages wait as long as the API may, then show the job's own page.
PAGE_WAIT_S = MAX_WAIT_S
_FIRST_POLL_S = 0.02
_LONGEST_POLL_S = 0.25


def parse_wait(
    request: Request, default: float = MAX_WAIT_S, *, answer_only: bool = False
) -> float:
    """``?wait=SECONDS`` (0 = answer with the job at once), capped at :data:`MAX_WAIT_S`.

    Call it before starting the job: a bad value must refuse the request before anything
    happens. ``answer_only``: the route answers with the result or an error, never with
    the job (DeepStack, CompreFace), so ``wait=0`` cannot be met and is refused.
    """
    raw = request.query_params.get("wait")
    if raw is None or raw == "":
        return min(default, MAX_WAIT_S)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    low = 0.0 if not answer_only else 0.001
    if not math.isfinite(value) or value < low:
        lowest = "0" if not answer_only else "above 0 (this route answers only with the result)"
        raise ApiError(
            "invalid",
            f"wait must be a number of seconds from {lowest} to {MAX_WAIT_S:g}, got {raw!r}.",
        )
    return min(value, MAX_WAIT_S)


def wait_for_job(job: Job, wait_s: float) -> Job:
    """The job, re-read until it is no longer queued or running or ``wait_s`` has passed.

    The worker publishes when the job ends (``webapp.jobs.notify``): the wait wakes at once.
    Between messages it re-reads the row with a backoff, so a lost message, or Redis down,
    costs at most the poll interval, never the answer.
    """
    deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_WAIT_S)
    pause = _FIRST_POLL_S
    if deadline <= time.monotonic():
        job.refresh_from_db()
        return job
    with notify.listening(job.pk) as pubsub:  # subscribed before the first read: no race
        while True:
            job.refresh_from_db()
            left = deadline - time.monotonic()
            if not job.is_active or left <= 0:
                return job
            if not notify.wait_message(pubsub, min(pause, left)):
                time.sleep(0 if pubsub is not None else min(pause, left))
            pause = min(pause * 2, _LONGEST_POLL_S)


def job_failure(job: Job) -> JobError:
    """Why a job that is not done has no result: the error it recorded, or its state."""
    recorded = job.result.get("error") if isinstance(job.result, dict) else None
    if isinstance(recorded, dict):
        error = JobError.from_dict(recorded)
        error.details = {**error.details, "job": job.pk}
        return error
    if job.status == JobStatus.CANCELLED:
        return JobError(
            f"Job {job.pk} was cancelled.",
            code="job_cancelled",
            status=409,
            details={"job": job.pk},
        )
    if job.status == JobStatus.FAILED:
        return JobError(
            job.error or f"Job {job.pk} failed.",
            code="job_failed",
            status=500,
            details={"job": job.pk},
        )
    return JobError(
        f"Job {job.pk} did not finish in time; is a worker running?",
        code="not_finished",
        status=504,
        details={"job": job.pk},
    )


def finished_result(job: Job) -> dict[str, Any] | None:
    """The result of a done job, ``None`` while it runs; raises :func:`job_failure` else."""
    if job.status == JobStatus.DONE:
        return dict(job.result or {})
    if job.is_active:
        return None
    raise job_failure(job)


def required_result(job: Job) -> dict[str, Any]:
    """The result, for callers that cannot answer 202 (a job still running is an error).

    Such a caller has no job to come back to, so a job that did not finish in time is
    cancelled (504): nobody would read its result, and it would hold a worker for nothing.
    """
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        from webapp.jobs.services import cancel_job

        cancel_job(job)
        raise JobError(
            f"Job {job.pk} did not finish in time (is a worker running?); it was cancelled, "
            "since this route answers only with the result.",
            code="not_finished",
            status=504,
            details={"job": job.pk},
        )
    if job.status != JobStatus.DONE:
        raise job_failure(job)
    return dict(job.result or {})


def job_response(
    job: Job,
    *,
    done_status: int = status.HTTP_200_OK,
    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Response:
    """200 (or ``done_status``) with the result and the job's id, 202 with the job while it
    runs, or the job's error; ``shape`` rewrites a result into the endpoint's body."""
    result = finished_result(job)
    if result is None:
        return Response({"job": JobSerializer(job).data}, status=status.HTTP_202_ACCEPTED)
    body = shape(result) if shape else result
    return Response({**body, "job": job.pk}, status=done_status)
