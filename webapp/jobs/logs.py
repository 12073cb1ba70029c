"""Every log line written while a job runs names the job: ``job=<id>`` (``job=-`` outside
one), so one grep finds everything a job did across the web and worker processes' logs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

current_job: ContextVar[int | None] = ContextVar("current_job", default=None)


class JobIdFilter(logging.Filter):
    """Adds ``record.job`` (the running job's id, or ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = current_job.get()
        record.job = "-" if job is None else str(job)
        return True


@contextlib.contextmanager
def job_context(job_id: int) -> Iterator[None]:
    token = current_job.set(job_id)
    try:
        yield
    finally:
        current_job.reset(token)
