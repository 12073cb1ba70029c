"""The annotation page in Chromium: draw, classes by key, suggestions, keyboard, conflicts."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import log_in
from tests.images import jpeg_bytes
from webapp.images.ingest import ingest_image
from webapp.images.models import Box, Image, LabelClass

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def two_images(dataset, labeler, tiny_detector):
    first = ingest_image(
        jpeg_bytes(400, 300, seed=1), dataset=dataset, user=labeler, original_name="a.jpg"
    )
    second = ingest_image(
        jpeg_bytes(400, 300, seed=2), dataset=dataset, user=labeler, original_name="b.jpg"
    )
    rbc = LabelClass.objects.create(dataset=dataset, name="RBC", color="#e6194b")
    LabelClass.objects.create(dataset=dataset, name="WBC", color="#3cb44b")
    Box.objects.create(
        image=first, label_class=rbc, x1=200, y1=150, x2=260, y2=210,
        origin="model", model_version=tiny_detector, score=0.9,
    )  # fmt: skip
    return first, second


def stage_point(page, x, y):
    """Screen coordinates of image pixel (x, y) on the stage."""
    return page.evaluate(
        """([x, y]) => { const svg = document.getElementById('stage');
            const p = svg.createSVGPoint(); p.x = x; p.y = y;
            const q = p.matrixTransform(svg.getScreenCTM());
            return [q.x, q.y]; }""",
        [x, y],
    )


def drag(page, start, end):
    page.mouse.move(*stage_point(page, *start))
    page.mouse.down()
    page.mouse.move(*stage_point(page, *end), steps=5)
    page.mouse.up()


def test_label_an_image_with_mouse_and_keyboard_and_find_it_saved(
    page, live_server, labeler, two_images
):
    first, second = two_images
    log_in(page, live_server.url, labeler.username)
    page.goto(f"{live_server.url}/label/images/{first.pk}/")
    expect(page.locator("#stage g.box.suggestion")).to_have_count(1)
    page.screenshot(path="/tmp/workbench-screenshots/annotate-open.png", full_page=True)
    drag(page, (20, 30), (120, 110))  # draw a box with the mouse (class 1: RBC)
    expect(page.locator("#stage g.box.label")).to_have_count(1)
    page.keyboard.press("2")  # the selected box becomes WBC
    expect(page.locator("#label-list li .name")).to_have_text(["WBC"])
    page.keyboard.press("a")  # accept the suggestion
    expect(page.locator("#stage g.box.label")).to_have_count(2)
    expect(page.locator("#stage g.box.suggestion")).to_have_count(0)
    page.screenshot(path="/tmp/workbench-screenshots/annotate.png", full_page=True)
    # Edits within a quarter second are saved together: one version or more.
    expect(page.locator("#save-state")).to_have_text(re.compile(r"^Saved · version \d+$"))
    page.keyboard.press("f")  # next image
    page.wait_for_url(f"**/label/images/{second.pk}/**")
    boxes = {b.label_class.name: b for b in Box.objects.filter(image=first, origin="human")}
    assert set(boxes) == {"RBC", "WBC"}
    wbc = boxes["WBC"]
    assert (wbc.x1, wbc.y1, wbc.x2, wbc.y2) == pytest.approx((20, 30, 120, 110), abs=1.0)
    assert boxes["RBC"].suggested_by_id is not None and boxes[
        "RBC"
    ].suggested_score == pytest.approx(0.9)
    assert not Box.objects.filter(image=first, origin="model").exists()
    page.goto(f"{live_server.url}/label/images/{first.pk}/")  # reload: all of it is there
    expect(page.locator("#label-list li .name")).to_have_text(["WBC", "RBC"])  # as drawn
    expect(page.locator("#label-list li .origin").nth(1)).to_contain_text("from model")


def test_a_stale_save_is_refused_with_a_message(page, live_server, labeler, reviewer, two_images):
    from webapp.labeling import services

    first, _ = two_images
    log_in(page, live_server.url, labeler.username)
    page.goto(f"{live_server.url}/label/images/{first.pk}/")
    expect(page.locator("#stage g.box.suggestion")).to_have_count(1)
    rbc = LabelClass.objects.get(name="RBC")
    # Someone else saves while this page is open.
    services.replace_boxes(
        Image.objects.get(pk=first.pk),
        [{"label_class": rbc.pk, "x1": 1, "y1": 1, "x2": 9, "y2": 9}],
        user=reviewer,
        version=0,
    )
    drag(page, (20, 30), (120, 110))
    expect(page.locator("#conflict")).to_be_visible(timeout=10000)
    expect(page.locator("#conflict-message")).to_contain_text("Someone else changed these labels")
    expect(page.locator("#conflict-message")).to_contain_text("by rev")
    assert [b.xyxy for b in Box.objects.filter(image=first, origin="human")] == [[1, 1, 9, 9]]
    page.click("#reload")
    expect(page.locator("#label-list li")).to_have_count(1)


def test_name_the_faces_of_a_photo(page, live_server, labeler, tiny_verifier, tiny_face_detector):
    from webapp.faces.models import Face, Subject
    from webapp.faces.services import gallery_dataset
    from webapp.labeling.faces import find_faces_on

    photo = ingest_image(jpeg_bytes(400, 300, seed=11), dataset=gallery_dataset(), user=labeler)
    find_faces_on(photo)
    faces = list(Face.objects.filter(image=photo).order_by("pk"))
    log_in(page, live_server.url, labeler.username)
    page.goto(f"{live_server.url}/label/images/{photo.pk}/")
    rows = page.locator("#face-list li")
    expect(rows).to_have_count(len(faces))
    expect(page.locator("#stage g.face-box")).to_have_count(len(faces))
    rows.nth(0).locator("input").fill("Grace Hopper")
    rows.nth(0).locator("input").press("Enter")
    expect(rows.nth(0).locator("strong")).to_have_text("1. Grace Hopper")
    rows.nth(1).get_by_role("button", name="Not a face").click()
    expect(rows.nth(1).locator("strong")).to_have_text("2. not face")
    grace = Subject.objects.get(name="Grace Hopper")
    assert Face.objects.get(pk=faces[0].pk).subject == grace
    assert Face.objects.get(pk=faces[1].pk).label == "not_face"


def test_keys_nudge_undo_redo_copy_paste_delete_and_done(page, live_server, labeler, two_images):
    first, second = two_images
    log_in(page, live_server.url, labeler.username)
    page.goto(f"{live_server.url}/label/images/{first.pk}/")
    expect(page.locator("#stage g.box.suggestion")).to_have_count(1)
    drag(page, (20, 30), (120, 110))
    page.locator("#label-list li").first.click()  # editable now (handles shown)
    expect(page.locator("#stage .handle")).to_have_count(8)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowDown")

    def labels():
        return page.evaluate(
            "() => window.annotate.state().labels"
            ".map(b => [b.x1, b.y1, b.x2, b.y2].map(Math.round))"
        )

    assert labels() == [[21, 40, 121, 120]]
    page.keyboard.press("Control+z")
    assert labels() == [[21, 30, 121, 110]]
    page.keyboard.press("Control+Shift+z")
    assert labels() == [[21, 40, 121, 120]]
    page.keyboard.press("Control+c")
    page.keyboard.press("Delete")
    assert labels() == []
    page.keyboard.press("Control+v")
    assert labels() == [[21, 40, 121, 120]]
    page.keyboard.press("Escape")
    page.keyboard.press("r")  # nothing selected: no suggestion is rejected
    page.keyboard.press("Tab")  # the label, then the suggestion
    page.keyboard.press("Tab")
    page.keyboard.press("r")
    expect(page.locator("#stage g.box.suggestion")).to_have_count(0)
    page.keyboard.press("Control+Enter")  # done, then the next image
    page.wait_for_url(f"**/label/images/{second.pk}/**")
    image = Image.objects.get(pk=first.pk)
    assert image.status == "labeled" and image.labeled_by == labeler
    assert [b.xyxy for b in Box.objects.filter(image=first, origin="human")] == [
        [21.0, 40.0, 121.0, 120.0]
    ]
    assert not Box.objects.filter(image=first, origin="model").exists()  # rejected
    page.keyboard.press("Control+v")  # the clipboard crosses images
    page.keyboard.press("p")  # and P copies the previous image's labels
    expect(page.locator("#label-list li")).to_have_count(2)


def test_zoom_and_pan_keep_boxes_on_their_pixels(page, live_server, labeler, two_images):
    first, _ = two_images
    log_in(page, live_server.url, labeler.username)
    page.goto(f"{live_server.url}/label/images/{first.pk}/")
    expect(page.locator("#zoom-level")).to_have_text("100%")
    page.keyboard.press("+")
    page.keyboard.press("+")
    expect(page.locator("#zoom-level")).to_have_text("156%")
    before = page.evaluate("() => window.annotate.state().view")
    page.mouse.move(*stage_point(page, 200, 150))
    page.mouse.down(button="right")
    page.mouse.move(*stage_point(page, 180, 150), steps=3)
    page.mouse.up(button="right")
    after = page.evaluate("() => window.annotate.state().view")
    assert after["x"] > before["x"] and after["y"] == pytest.approx(before["y"])
    drag(page, (210, 160), (230, 190))  # drawn at the zoom and pan: image pixels still
    box = page.evaluate("() => window.annotate.state().labels[0]")
    assert [round(box[k]) for k in ("x1", "y1", "x2", "y2")] == [210, 160, 230, 190]
    page.keyboard.press("0")
    expect(page.locator("#zoom-level")).to_have_text("100%")
