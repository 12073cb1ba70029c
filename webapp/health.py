"""``/healthz``: the process answers. ``/readyz``: it can do its work: the database, Redis, a
worker listening on each job queue, and an active model of each kind. Both answer anyone
(load balancers and docker-compose's health checks have no login) and say no secrets: which
check failed and why, never a URL or a password."""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from training.models import ModelKind, ModelVersion


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"the database does not answer ({type(exc).__name__})"
    return None


def _redis() -> str | None:
    try:
        redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_timeout=1.0, socket_connect_timeout=1.0
        ).ping()
    except Exception as exc:
        return f"Redis does not answer ({type(exc).__name__})"
    return None


def _workers() -> str | None:
    if settings.JOBS_IN_PROCESS:
        return None
    from webapp.celery import app

    try:
        with app.connection_for_read() as connection_:  # its own, not a cached pool's
            replies = app.control.inspect(timeout=1.0, connection=connection_).active_queues()
        replies = replies or {}
    except Exception as exc:
        return f"workers cannot be asked ({type(exc).__name__})"
    listened = {q["name"] for queues in replies.values() for q in queues}
    missing = [q for q in (settings.JOB_QUEUE_GPU, settings.JOB_QUEUE_DEFAULT) if q not in listened]
    return f"no worker listens on {', '.join(missing)}" if missing else None


def _models() -> str | None:
    missing = [k.label for k in ModelKind if ModelVersion.active(k.value) is None]
    return f"no active {', '.join(missing)}" if missing else None


@login_not_required
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Any] = {"database": _database()}
    if checks["database"] is None:
        checks["models"] = _models()
    checks["redis"] = _redis()
    if checks["redis"] is None:
        checks["workers"] = _workers()
    failed = {name: why for name, why in checks.items() if why}
    body = {"status": "ready" if not failed else "not ready", "failed": failed,
            "checked": sorted(checks)}  # fmt: skip
    return JsonResponse(body, status=200 if not failed else 503)
