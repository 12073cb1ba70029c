"""Scale-out: two workers started as two hosts would start them (their own node names, one
Redis, one PostgreSQL) share the gpu queue, and a job survives one of them being killed."""

from __future__ import annotations

import os
import signal
import time

import pytest

import tests.worker_app  # noqa: F401  (the test_sleep job kind)
from tests.worker import Worker
from webapp.jobs.models import Job, JobStatus
from webapp.jobs.services import start_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_two_workers_share_the_queue_and_one_dying_loses_nothing(tmp_path, labeler, monkeypatch):
    monkeypatch.setenv("JOB_SWEEP_S", "1")
    first, second = Worker(tmp_path / "host-a.log"), Worker(tmp_path / "host-b.log")
    try:
        jobs = [
            start_job("test_sleep", user=labeler, params={"steps": 30, "seconds": 0.1})
            for _ in range(4)
        ]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = Job.objects.filter(pk__in=[j.pk for j in jobs], status="running")
            if running.count() == 2:
                break
            time.sleep(0.1)
        assert running.count() == 2, "both hosts take a job at once"
        for pid in first.child_pids():
            os.kill(pid, signal.SIGKILL)
        first.process.send_signal(signal.SIGKILL)  # host A is gone, main process and all
        first.process.wait()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            statuses = set(
                Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True)
            )
            if statuses == {JobStatus.DONE}:
                break
            time.sleep(0.3)
        done = list(Job.objects.filter(pk__in=[j.pk for j in jobs]))
        assert {j.status for j in done} == {JobStatus.DONE}, [(j.pk, j.status) for j in done]
        assert max(j.attempts for j in done) == 2  # the killed host's job, finished by B
        survivor = set(second.child_pids())
        assert {j.result["pid"] for j in done if j.attempts == 2} <= survivor
    finally:
        second.stop()
        first.stop()
