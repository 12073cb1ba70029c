"""Nothing lost when Redis or a whole worker dies: a private redis-server is killed and
started again, real Celery workers are SIGKILLed, and the Job rows say what happened.

- Redis down when a job starts: a JSON answer at once (no 500), the job kept and marked,
  then sent by a worker's sweeper once Redis is back, and done.
- Redis restarted without its data: a queued job's message is gone; the sweeper sends it
  again and it is done.
- A whole worker SIGKILLed mid-job: its job would stay ``running`` until the broker's
  visibility timeout; the sweeper of the next worker revives it within seconds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.worker_app  # noqa: F401  (the test_sleep job kind, here too)
from tests.worker import Worker
from webapp.jobs.models import Job, JobStatus
from webapp.jobs.services import NOT_SENT, start_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


class PrivateRedis:
    """A redis-server of this test's own, with no persistence (a restart loses its data)."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def redis(tmp_path, settings, monkeypatch) -> Iterator[PrivateRedis]:
    from webapp.celery import app

    server = PrivateRedis(tmp_path)
    # Publish to the private server through pools of its own; the suite's pools (which
    # other parts of Celery have cached, such as the control mailbox's) come back after.
    saved = app.conf["broker_url"], app._pool, app.amqp._producer_pool
    settings.REDIS_URL = settings.CELERY_BROKER_URL = server.url
    app.conf["broker_url"] = server.url
    app._pool = None
    app.amqp._producer_pool = None
    monkeypatch.setenv("JOB_SWEEP_S", "1")  # the workers started here sweep every second
    monkeypatch.setenv("JOB_SWEEP_GRACE_S", "1")
    yield server
    server.kill()
    if app._pool is not None:
        app._pool.force_close_all()
    app.conf["broker_url"], app._pool, app.amqp._producer_pool = saved


def _worker(tmp_path: Path, name: str) -> Worker:
    # Worker hands settings.REDIS_URL (the private server) to the worker process.
    return Worker(tmp_path / f"{name}.log")


def _wait_status(job: Job, status: str, timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status == status:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} still {job.status} ({job.message})")


def test_a_job_started_while_redis_is_down_is_kept_and_sent_when_it_returns(
    redis, tmp_path, labeler_api, dataset
):
    redis.kill()
    began = time.monotonic()
    answer = labeler_api.post("/api/v1/jobs/", {"kind": "image_stats", "dataset": dataset.pk})
    assert time.monotonic() - began < 10
    assert answer.status_code == 201, answer.content  # a JSON answer, never an HTML 500
    job = Job.objects.get(pk=answer.json()["id"])
    assert job.status == JobStatus.QUEUED and job.task_id == "" and job.message == NOT_SENT
    assert labeler_api.get(f"/api/v1/jobs/{job.pk}/").json()["message"] == NOT_SENT

    redis.start()
    worker = _worker(tmp_path, "after")
    try:
        # The dataset has no images: the job runs and fails with that reason, so it ran.
        done = _wait_status(job, JobStatus.FAILED, 60)
        assert done.task_id and done.error == "The dataset has no images yet."
    finally:
        worker.stop()


def test_a_message_lost_by_a_restarted_redis_is_sent_again(redis, tmp_path, labeler):
    job = start_job("test_sleep", user=labeler, params={"steps": 2, "seconds": 0.05})
    job.refresh_from_db()
    first = job.task_id
    assert first  # sent: its message waits in the private Redis
    redis.kill()
    redis.start()  # no append-only file: the queue is empty now
    worker = _worker(tmp_path, "restarted")
    try:
        done = _wait_status(job, JobStatus.DONE, 60)
        assert done.task_id != first and done.attempts == 1
    finally:
        worker.stop()


def test_a_job_of_a_whole_worker_killed_is_revived_by_the_next_worker(
    redis, tmp_path, labeler, settings
):
    first = _worker(tmp_path, "first")
    job = start_job("test_sleep", user=labeler, params={"steps": 40, "seconds": 0.1})
    _wait_status(job, JobStatus.RUNNING, 30)
    for pid in first.child_pids():
        os.kill(pid, signal.SIGKILL)
    first.process.send_signal(signal.SIGKILL)  # the whole worker, main process too
    first.process.wait()
    killed_at = time.monotonic()
    second = _worker(tmp_path, "second")
    try:
        done = _wait_status(job, JobStatus.DONE, 60)
        # Revived by the sweeper long before the broker's visibility timeout would have.
        visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
        assert time.monotonic() - killed_at < visibility
        assert done.attempts == 2 and done.result["attempt"] == 2
    finally:
        second.stop()


def test_job_messages_share_one_redis_client_per_process():
    from webapp.jobs import notify

    assert notify._client() is notify._client()
