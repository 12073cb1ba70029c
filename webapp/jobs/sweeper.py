"""The Job row is the truth; the broker only carries a reminder. The sweeper mends the two
when they disagree.

- A job whose enqueue failed (Redis was down when it was started) stays ``queued`` with no
  ``task_id``; the sweeper sends it once the broker answers again.
- A ``queued`` job whose message the broker no longer holds (Redis restarted without its
  append-only file, a queue purged) is sent again.
- A ``running`` job whose heartbeat stopped (its whole worker was killed, so nothing
  redelivers it before the broker's visibility timeout, hours away) is sent again; the
  next worker's claim takes it over, or fails it once it has stopped too many times
  (``webapp.jobs.runner._claim``).

Sending a job twice is safe: a worker claims a job in the database before running it, and
a second delivery of a job that is done, or beating on a live worker, is dropped.

Workers run :func:`sweep` every ``JOB_SWEEP_S`` seconds from a thread of their main
process (one at a time across workers, by a Redis lock); ``manage.py sweep_jobs`` runs it
once, for cron.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from django.conf import settings
from django.db import close_old_connections
from django.db.models import Q
from django.utils import timezone

from webapp.jobs.models import Job, JobStatus
from webapp.jobs.services import dispatch

logger = logging.getLogger(__name__)
LOCK = "workbench:job-sweeper"


@dataclass
class SweepReport:
    sent: list[int] = field(default_factory=list)  # never reached the broker
    resent: list[int] = field(default_factory=list)  # the broker lost them
    revived: list[int] = field(default_factory=list)  # their worker died

    def __bool__(self) -> bool:
        return bool(self.sent or self.resent or self.revived)


def _redis() -> redis.Redis:
    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL, socket_timeout=2.0, socket_connect_timeout=2.0
    )


@dataclass(frozen=True)
class Held:
    """What the broker holds: task ids waiting in a job queue, and delivered but unacked."""

    waiting: set[str]
    unacked: set[str]


def broker_task_ids() -> Held | None:
    """The task ids the broker holds (the Redis transport's queue lists and its ``unacked``
    hash), or None when it does not answer."""
    try:
        client = _redis()
        waiting: set[str] = set()
        for queue in (settings.JOB_QUEUE_GPU, settings.JOB_QUEUE_DEFAULT):
            for raw in client.lrange(queue, 0, -1):
                waiting.add(str(json.loads(raw)["headers"]["id"]))
        unacked = {str(json.loads(raw)[0]["headers"]["id"]) for raw in client.hvals("unacked")}
        return Held(waiting, unacked)
    except Exception as exc:  # Redis down or unreachable: nothing can be sent now anyway
        logger.warning("job sweeper: the broker does not answer (%s)", exc)
        return None


def sweep() -> SweepReport:
    """Send again what the broker does not hold; see the module's docstring."""
    report = SweepReport()
    held = broker_task_ids()
    if held is None:
        return report
    now = timezone.now()
    # A job just created may be between its commit and its send: leave it a moment.
    settled = now - timedelta(seconds=settings.JOB_SWEEP_GRACE_S)
    stale = now - timedelta(seconds=settings.JOB_STALE_AFTER_S)
    queued = Job.objects.filter(status=JobStatus.QUEUED, created_at__lt=settled)
    dead = Job.objects.filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True), status=JobStatus.RUNNING
    )
    for job in list(queued.order_by("pk")[:500]) + list(dead.order_by("pk")[:500]):
        # A queued job's message may wait in a queue or sit with a worker about to claim it.
        # A dead worker's message stays unacked until the visibility timeout (hours): only
        # one waiting in a queue means the job is on its way again.
        on_its_way = held.waiting | (held.unacked if job.status == JobStatus.QUEUED else set())
        if job.task_id and job.task_id in on_its_way:
            continue
        was_sent = bool(job.task_id)
        if not dispatch(job):
            break  # the broker went away meanwhile: the next sweep goes on
        if job.status == JobStatus.RUNNING:
            report.revived.append(job.pk)
        elif was_sent:
            report.resent.append(job.pk)
        else:
            report.sent.append(job.pk)
    if report:
        logger.warning(
            "job sweeper: sent %s, sent again %s (lost by the broker), revived %s (dead worker)",
            report.sent,
            report.resent,
            report.revived,
        )
    return report


def _locked_sweep() -> None:
    try:
        if not _redis().set(LOCK, "1", nx=True, ex=max(1, settings.JOB_SWEEP_S - 1)):
            return  # another worker swept within the period
    except Exception:
        return
    sweep()


def start_sweeping(stop: threading.Event) -> threading.Thread:
    """Sweep every ``JOB_SWEEP_S`` seconds until ``stop`` is set (a worker's thread)."""

    def loop() -> None:
        while not stop.wait(settings.JOB_SWEEP_S):
            try:
                close_old_connections()
                _locked_sweep()
            except Exception:  # a database hiccup: the next period tries again
                logger.exception("job sweeper failed")

    thread = threading.Thread(target=loop, daemon=True, name="job-sweeper")
    thread.start()
    return thread
