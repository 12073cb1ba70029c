"""The whole loop from the browser alone, in Chromium against a real Celery worker: create a
dataset, import a labelled folder, mark the target source, build the splits, run a random
search, read the diagnosis and its advice, promote the winner; that dataset's uploads are
then served by it with boxes at its own working threshold."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import log_in
from tests.conftest import token_client
from tests.worker import Worker
from training.models import Promotion, TrainingRun
from webapp.detection.services import working_threshold
from webapp.images.models import Dataset, SplitAssignment
from webapp.jobs.models import Job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]
DEMO = Path(__file__).resolve().parent.parent / "demo" / "bccd"
SHOTS = Path("/tmp/workbench-screenshots")


@pytest.fixture
def worker(tmp_path) -> Iterator[Worker]:
    running = Worker(tmp_path / "worker.log")
    yield running
    running.stop()


def _demo_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(DEMO.rglob("*")):
            if path.is_file() and path.parent.name in ("Annotations", "JPEGImages"):
                archive.write(path, f"bccd/{path.relative_to(DEMO)}")
    return buffer.getvalue()


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_upload_to_a_better_model_from_the_browser(page, live_server, worker, admin_user):
    SHOTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    log_in(page, base, admin_user.username)

    # A dataset of one's own, and a labelled folder imported into it as source "app".
    page.goto(f"{base}/datasets/")
    page.fill("#new-dataset input[name=name]", "my cells")
    page.select_option("#new-dataset select[name=task]", "detection")
    page.click("#create-dataset")
    dataset = Dataset.objects.get(name="my cells")
    page.wait_for_url(f"**/datasets/{dataset.pk}/")
    page.set_input_files(
        "#import-form input[name=file]",
        {"name": "bccd.zip", "mimeType": "application/zip", "buffer": _demo_zip()},
    )
    page.select_option("#import-form select[name=format]", "voc")
    page.fill("#import-form input[name=source]", "app")
    page.click("#start-import")
    _wait(lambda: Job.objects.filter(kind="import", status="done").exists(), 120, "the import")
    assert dataset.images.filter(source="app").count() == 24

    # The target source and the splits.
    page.goto(f"{base}/datasets/{dataset.pk}/")
    page.click("#splits-link")
    page.select_option("#split-form select[name=target_source]", "app")
    page.click("#build-splits")
    expect(page.locator("#split-counts")).to_contain_text("val")
    dataset.refresh_from_db()
    assert dataset.target_source == "app"
    splits = set(
        SplitAssignment.objects.filter(image__dataset=dataset).values_list("split", flat=True)
    )
    assert {"train", "val", "test"} <= splits
    page.screenshot(path=str(SHOTS / "loop-splits.png"), full_page=True)

    # A random search of two trials, watched live until its report.
    page.click("text=Train on it")
    page.fill("#run-form input[name=epochs]", "30")
    page.fill("#run-form input[name=search_trials]", "2")
    page.click("#start-run")
    run = TrainingRun.objects.get(dataset=dataset)
    page.wait_for_url(f"**/training/runs/{run.pk}/")
    expect(page.locator("#diagnosis")).to_be_visible(timeout=300_000)
    run.refresh_from_db()
    assert run.status == "done" and run.trials.count() == 2
    expect(page.locator("#advice")).not_to_be_empty()
    expect(page.locator("#trials tbody tr")).to_have_count(2)
    expect(page.locator("#curves polyline")).to_have_count(2)
    page.screenshot(path=str(SHOTS / "loop-run.png"), full_page=True)

    # Promote the winner; the dataset's uploads are now served by it.
    page.click("#promote")
    expect(page.locator("body")).to_contain_text(f"now serves “{dataset.name}”")
    version = run.model_version
    assert Promotion.objects.get(dataset=dataset).version == version
    photo = sorted((DEMO / "JPEGImages").iterdir())[0]
    api = token_client(admin_user)
    with photo.open("rb") as f:
        answer = api.post(
            "/api/v1/detect/?wait=60", {"image": f, "dataset": dataset.pk}, format="multipart"
        )
    assert answer.status_code == 200, answer.content
    result = answer.json()
    assert result["model_version"]["id"] == version.pk
    # No threshold sent: the model's own working threshold, fitted on its validation split.
    assert result["min_confidence"] == pytest.approx(working_threshold(version), abs=1e-4)
    predictions = result["predictions"]
    assert predictions, "no box at the model's own working threshold"
    assert all(p["confidence"] >= result["min_confidence"] - 1e-4 for p in predictions)
