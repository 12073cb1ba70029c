"""A person in Debian's Chromium: log in, upload, see the gallery, run and watch a job."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import log_in
from tests.images import jpeg_bytes
from webapp.images.models import Image

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", "/tmp/workbench-screenshots"))


def test_upload_valid_and_rejected_then_gallery(page, live_server, labeler, dataset):
    log_in(page, live_server.url, labeler.username)
    page.goto(f"{live_server.url}/upload/")
    page.select_option("#dataset", str(dataset.pk))
    page.set_input_files(
        "#file-input",
        [
            {"name": "cells.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes(120, 90)},
            {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"this is only text\n" * 50},
        ],
    )
    expect(page.locator("#upload-summary")).to_have_text("1 uploaded, 1 rejected", timeout=15000)
    rejected = page.locator("li.upload.rejected")
    expect(rejected).to_have_attribute("data-filename", "notes.jpg")
    expect(rejected.locator(".verdict")).to_contain_text("not an image we can read")
    expect(page.locator("li.upload.ok .verdict")).to_contain_text("uploaded (120×90)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "upload.png"), full_page=True)

    page.goto(f"{live_server.url}/?dataset={dataset.pk}")
    tiles = page.locator("#gallery li.tile")
    expect(tiles).to_have_count(1)
    expect(tiles.first).to_contain_text("cells.jpg")
    # The thumbnail decodes (a broken image has naturalWidth 0); wait for it rather than
    # sampling once, which raced the image's load on a busy machine.
    page.wait_for_function(
        "() => { const i = document.querySelector('#gallery img');"
        " return i !== null && i.complete && i.naturalWidth > 0; }",
        timeout=15000,
    )
    page.screenshot(path=str(SCREENSHOTS / "gallery.png"), full_page=True)
    assert list(Image.objects.values_list("original_name", flat=True)) == ["cells.jpg"]


def test_start_stats_job_and_watch_it_finish(page, live_server, labeler, dataset, settings):
    settings.JOBS_IN_PROCESS = True  # the live server runs the job in a thread of its own
    from webapp.images.ingest import ingest_image

    for seed in range(2):
        ingest_image(jpeg_bytes(30, 20, seed=seed), dataset=dataset, user=labeler)
    log_in(page, live_server.url, labeler.username)
    page.goto(f"{live_server.url}/datasets/{dataset.pk}/")
    page.click("#start-stats")
    expect(page.locator("#job-status")).to_have_text("done", timeout=20000)
    expect(page.locator("#stats-table")).to_contain_text("mean")
    width = page.evaluate("() => document.getElementById('job-bar').style.width")
    assert width == "100%"
    page.screenshot(path=str(SCREENSHOTS / "job.png"), full_page=True)


def test_viewer_sees_no_upload_form(page, live_server, viewer):
    log_in(page, live_server.url, viewer.username)
    page.goto(f"{live_server.url}/upload/")
    expect(page.locator(".flash.warning")).to_contain_text("can look but not upload")
    assert page.locator("#upload-form").count() == 0
