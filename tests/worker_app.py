"""The Celery app for worker processes started by tests, plus test-only job kinds.

`test_sleep` exists only here: it gives tests a job that runs long enough to cancel it
or kill its worker mid-way, without slowing any real job down.
"""

from __future__ import annotations

import os
import time
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from webapp.celery import app  # noqa: E402
from webapp.jobs.registry import register  # noqa: E402
from webapp.jobs.runner import JobContext  # noqa: E402


@register("test_sleep", uses_model=False)
def sleep_job(ctx: JobContext) -> dict[str, Any]:
    steps = int(ctx.params.get("steps", 20))
    for step in range(steps):
        time.sleep(float(ctx.params.get("seconds", 0.25)))
        ctx.progress((step + 1) / steps, f"step {step + 1} of {steps}", force=True)
    return {"steps": steps, "pid": os.getpid(), "attempt": ctx.job.attempts}


__all__ = ["app"]
