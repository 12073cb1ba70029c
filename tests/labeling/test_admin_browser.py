"""In Chromium: a labeler sees the admin's image list with boxes drawn; a viewer changes
nothing there."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import log_in
from webapp.images.models import Box, Image

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

SHOTS = Path("/tmp/workbench-screenshots")


@pytest.fixture
def boxed(image, classes, predict):
    Box.objects.create(image=image, label_class=classes["RBC"], x1=10, y1=20, x2=90, y2=100)
    predict(image, classes["WBC"], 0.87, 100, 30, 180, 120)
    return image


def test_labeler_sees_thumbnails_with_boxes(page, live_server, labeler, boxed):
    log_in(page, live_server.url, labeler.username)
    page.click("text=Admin")  # the nav link shows for staff; labelers are staff
    page.goto(f"{live_server.url}/admin/images/image/")
    thumb = page.locator("svg.wb-boxes").first
    expect(thumb).to_be_visible()
    expect(thumb.locator("g.box.human")).to_have_count(1)
    expect(thumb.locator("g.box.model")).to_have_count(1)
    expect(thumb.locator("g.box.model text")).to_have_text("0.87")
    assert thumb.locator("g.box.model rect").get_attribute("stroke-dasharray") != "none"
    href = thumb.locator("image").get_attribute("href")
    assert href == f"/media/{boxed.thumbnail.name}"
    assert page.request.get(f"{live_server.url}{href}").status == 200  # the login-checked view
    # The drawn box sits where it belongs: 80 image px wide in a 120 px thumbnail of 200 px.
    box = thumb.locator("g.box.human rect").bounding_box()
    assert box is not None and abs(box["width"] - 80 * 120 / 200) < 2.5
    expect(page.locator("select[name=action]")).to_have_count(1)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "admin-images.png"), full_page=True)


def test_viewer_cannot_change_anything(page, live_server, viewer, boxed):
    log_in(page, live_server.url, viewer.username)
    page.goto(f"{live_server.url}/admin/images/image/")
    expect(page.locator("svg.wb-boxes")).to_have_count(1)
    expect(page.locator("select[name=action]")).to_have_count(0)  # no bulk actions
    expect(page.locator("input.action-select")).to_have_count(0)
    page.locator("svg.wb-boxes").first.click()  # opens the image's page, read-only
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "admin-image-viewer.png"), full_page=True)
    expect(page.locator("input[name=_save]")).to_have_count(0)
    expect(page.locator("select[name=status]")).to_have_count(0)
    expect(page.locator("input[name='boxes-0-x1']")).to_have_count(0)
    expect(page.locator(".field-status .readonly")).to_have_text("New")
    page.goto(f"{live_server.url}/admin/accounts/user/")
    expect(page.locator("body")).to_contain_text("403")
    fresh = Image.objects.get(pk=boxed.pk)
    assert (fresh.status, fresh.source, fresh.labels_version) == ("new", "upload", 0)
