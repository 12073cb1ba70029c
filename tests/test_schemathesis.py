"""Schemathesis, generating requests from our own OpenAPI schema, finds no server error and
no answer the schema does not describe.

A bounded run against the live test server as a labeler (not an admin, and without DELETE,
so it cannot remove the fixtures): every operation, a few examples each, fixed seed. Any
5xx is a failure (every model kind is active, so no 503 "no model"), and so is a status, a
content type or a body the operation's schema does not document; jobs run in the server
process so waiting routes get their answers. Image fields get real JPEG and PNG files of any
size (``tests/fuzz/hooks.py``), so requests get past the image check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.images import jpeg_bytes
from webapp.accounts.models import ApiToken
from webapp.images.ingest import ingest_image

pytestmark = [pytest.mark.django_db(transaction=True)]
CLI = Path(sys.executable).parent / "schemathesis"
REPO = Path(__file__).resolve().parents[1]
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,refusals_store_nothing"
)


def test_no_server_error_from_generated_requests(
    live_server,
    labeler,
    dataset,
    tiny_detector,
    tiny_verifier,
    tiny_face_detector,
    settings,
    tmp_path,
):
    settings.JOBS_IN_PROCESS = True
    ingest_image(jpeg_bytes(seed=1), dataset=dataset, user=labeler)
    _, key = ApiToken.issue(labeler, "fuzz")
    report = tmp_path / "schemathesis.txt"
    checks = os.environ.get("SCHEMATHESIS_CHECKS", CHECKS)
    db = connection.settings_dict
    env = {**os.environ, "PYTHONPATH": str(REPO), "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks"}
    if db["ENGINE"].endswith("postgresql"):  # the rows check reads the live server's database
        env["ROWS_DB"] = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    else:
        checks = checks.replace(",refusals_store_nothing", "")
    run = subprocess.run(
        [str(CLI), "run", f"{live_server.url}/api/v1/schema/", "--url", live_server.url,
         "-H", f"Authorization: Token {key}", "--checks", checks,
         "--max-examples", "3", "--seed", "1", "--workers", "1", "--request-timeout", "60",
         "--exclude-method", "DELETE", "--phases", "examples,fuzzing",
         *os.environ.get("SCHEMATHESIS_EXTRA", "").split()],  # e.g. --report har
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,  # cache goes there
    )  # fmt: skip
    report.write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-6000:]
    assert "passed" in run.stdout and "Server error" not in run.stdout
