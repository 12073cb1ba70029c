"""Requests waiting for a job never freeze the web server: real gunicorn, configured as
docker-compose runs it (gthread), with no model worker running, so every detection waits.

Three DeepStack calls wait for a worker that is not there; a plain GET beside them answers
at once; each wait ends in a 504 JSON error and its job is cancelled (the caller asked for
an answer only and will never read it)."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.images import jpeg_bytes
from tests.worker import database_url
from webapp.accounts.models import ApiToken
from webapp.jobs.models import Job, JobStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
ROOT = Path(__file__).resolve().parent.parent
COMPOSE = (ROOT / "docker-compose.yml").read_text()


@pytest.fixture
def gunicorn(tmp_path) -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # docker-compose's worker class and threads, one process: the case that froze before.
    found = re.search(r"--threads (\d+)", COMPOSE)
    assert found is not None
    threads = found.group(1)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "PYTHONPATH": str(ROOT),
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "webapp.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--worker-class", "gthread", "--workers", "1", "--threads",
         threads, "--timeout", "120"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    yield port
    server.terminate()
    server.wait(20)
    log.close()


def _deepstack(port: int, key: str, out: list[tuple[int, dict, float]]) -> None:
    boundary = uuid.uuid4().hex
    image = jpeg_bytes(64, 48)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    began = time.monotonic()
    connection.request(
        "POST",
        "/v1/vision/detection?wait=4",
        body,
        {"Content-Type": f"multipart/form-data; boundary={boundary}", "x-api-key": key},
    )
    response = connection.getresponse()
    out.append((response.status, json.loads(response.read()), time.monotonic() - began))


def test_waits_hold_threads_not_the_server_and_end_in_a_cancelled_job(
    gunicorn, labeler, tiny_detector
):
    _, key = ApiToken.issue(labeler, "load")
    answers: list[tuple[int, dict, float]] = []
    waiting = [threading.Thread(target=_deepstack, args=(gunicorn, key, answers)) for _ in range(3)]
    for t in waiting:
        t.start()
    deadline = time.monotonic() + 20
    while Job.objects.filter(kind="detect").count() < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Job.objects.filter(kind="detect").count() == 3  # all three are waiting now

    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", gunicorn, timeout=30)
    connection.request("GET", "/api/v1/jobs/", headers={"x-api-key": key})
    plain = connection.getresponse()
    plain.read()
    assert plain.status == 200 and time.monotonic() - began < 2.0

    for t in waiting:
        t.join(60)
    assert len(answers) == 3
    for code, body, seconds in answers:
        assert code == 504 and body["success"] is False and "cancelled" in body["error"]
        assert 3.5 < seconds < 30
    statuses = set(Job.objects.filter(kind="detect").values_list("status", flat=True))
    assert statuses == {JobStatus.CANCELLED}
