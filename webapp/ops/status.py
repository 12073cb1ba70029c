"""The operator's status page (admins): queue lengths, workers and what they run, recent
failures, and jobs the sweeper would act on (never sent, or whose worker stopped)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from webapp.accounts.permissions import user_is_admin
from webapp.jobs.models import Job, JobStatus
from webapp.jobs.sweeper import broker_task_ids


def _queues() -> list[dict[str, Any]] | None:
    import redis

    try:
        client = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        queues = (settings.JOB_QUEUE_GPU, settings.JOB_QUEUE_DEFAULT)
        return [{"name": q, "waiting": int(client.llen(q))} for q in queues]
    except redis.RedisError:
        return None


def _workers() -> list[dict[str, Any]] | None:
    from webapp.celery import app

    try:
        with app.connection_for_read() as connection:
            inspect = app.control.inspect(timeout=1.0, connection=connection)
            queues = inspect.active_queues() or {}
            active = inspect.active() or {}
    except Exception:
        return None
    return [
        {
            "name": name,
            "queues": sorted(q["name"] for q in listened),
            "running": len(active.get(name, [])),
        }
        for name, listened in sorted(queues.items())
    ]


@require_GET
def status_page(request: HttpRequest) -> HttpResponse:
    if not user_is_admin(request.user):
        raise PermissionDenied("Only admins see the operations status.")
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_STALE_AFTER_S)
    running = Job.objects.filter(status=JobStatus.RUNNING).order_by("-started_at")[:50]
    orphaned = Job.objects.filter(
        Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale) | Q(status=JobStatus.QUEUED, task_id="")
    ).order_by("pk")[:50]
    failed = Job.objects.filter(status=JobStatus.FAILED).order_by("-finished_at")[:20]
    return render(
        request,
        "ops/status.html",
        {
            "queues": _queues(),
            "workers": _workers(),
            "broker_answers": broker_task_ids() is not None,
            "running": running,
            "orphaned": orphaned,
            "failed": failed,
            "stale_after": settings.JOB_STALE_AFTER_S,
            "now": now,
        },
    )
