"""A person in Chromium verifies two ORL photos and sees the decision and both face boxes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", "/tmp/workbench-screenshots"))


def pgm(name: str, data: bytes) -> dict:
    return {"name": name, "mimeType": "image/x-portable-graymap", "buffer": data}


def test_verify_two_photos_in_the_browser(page, live_server, viewer, tiny_verifier, orl, settings):
    settings.JOBS_IN_PROCESS = True  # the live server runs the verify job in a thread
    log_in(page, live_server.url, viewer.username)
    page.click("nav >> text=Verify")
    page.wait_for_load_state()  # faces.js listens for the file choice once loaded
    expect(page.locator("h1")).to_contain_text("Verify faces")
    page.set_input_files("#id_source_image", pgm("s1-1.pgm", orl(1, 1)))
    page.set_input_files("#id_target_image", pgm("s1-1-again.pgm", orl(1, 1)))
    expect(page.locator("label[for=id_source_image] .file-name")).to_have_text("s1-1.pgm")
    page.click("#verify-submit")
    expect(page.locator("#verdict")).to_have_text("Same person", timeout=30000)
    expect(page.locator("#distance")).to_have_text("0.0000")
    boxes = page.locator("#verify-result svg.faces-overlay rect.face.compared")
    expect(boxes).to_have_count(2)
    pictures = page.locator("#verify-result .face-figure img")
    for i in range(2):  # the whole (small) photo is the face: its box covers the picture
        box, picture = boxes.nth(i).bounding_box(), pictures.nth(i).bounding_box()
        assert box and picture and box["width"] > 92 and box["height"] > 112  # scaled up
        for key in ("x", "y", "width", "height"):
            assert box[key] == pytest.approx(picture[key], abs=5)  # give or take the stroke
    loaded = page.evaluate(
        "() => Array.from(document.querySelectorAll('#verify-result img'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert loaded
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "faces-verify.png"), full_page=True)
