"""Celery glue: a primitive id in, the plain runner does the rest."""

from __future__ import annotations

from celery import shared_task

from webapp.jobs.runner import execute_job


@shared_task(name="jobs.run_job", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: int) -> None:
    execute_job(job_id)
