"""Test settings: the app's settings with a private Redis db, private queues and media.

The run id is put in the environment so a Celery worker started by a test (a separate
process) derives the same queue names and media folder.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from webapp.settings import *  # noqa: F403
from webapp.settings import DATABASES, REDIS_URL, VAR_DIR

RUN_ID = os.environ.setdefault("WORKBENCH_TEST_RUN_ID", uuid.uuid4().hex[:10])
TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "13"))


def _with_db(url: str, db: int) -> str:
    return urlunparse(urlparse(url)._replace(path=f"/{db}"))


REDIS_URL = _with_db(os.environ.get("TEST_REDIS_URL", REDIS_URL), TEST_REDIS_DB)
CELERY_BROKER_URL = REDIS_URL
JOB_QUEUE_GPU = f"test-{RUN_ID}-gpu"
JOB_QUEUE_DEFAULT = f"test-{RUN_ID}-default"
CELERY_TASK_DEFAULT_QUEUE = JOB_QUEUE_DEFAULT
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 30}
JOBS_IN_PROCESS = False
THROTTLE_PREFIX = f"test-{RUN_ID}"  # counts of this run only
# Beat often and call a worker dead soon, so tests that kill workers finish quickly.
JOB_HEARTBEAT_S = 1
JOB_STALE_AFTER_S = 3

MEDIA_ROOT = Path(tempfile.gettempdir()) / f"workbench-test-{RUN_ID}" / "media"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so a worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{RUN_ID}.sqlite3")}
