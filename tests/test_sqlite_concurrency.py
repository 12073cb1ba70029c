"""The embedded SQLite default under concurrent writers: WAL, a busy timeout and
IMMEDIATE transactions, so four processes writing at once all succeed (without them,
SQLite answers "database is locked" at once)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRITER = """
import django, os, sys
django.setup()
from django.db import connection, transaction
from webapp.jobs.models import Job
assert connection.cursor().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
for i in range(60):
    with transaction.atomic():
        job = Job.objects.create(kind="image_stats", params={"writer": sys.argv[1], "i": i})
        Job.objects.filter(pk=job.pk).update(progress=0.5)  # a read, then writes
print("ok")
"""


def _writer(n: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(n)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_four_processes_write_at_once_without_database_is_locked(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VAR_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    writers = [_writer(n, env) for n in range(4)]
    results = [w.communicate(timeout=300) for w in writers]
    for (out, err), w in zip(results, writers, strict=True):
        assert w.returncode == 0 and out.strip() == "ok", err[-2000:]
    count = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); "
         "from webapp.jobs.models import Job; print(Job.objects.count())"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert count.stdout.strip() == "240", count.stderr
