"""The review page draws labels and predictions; the slider filters without a round trip."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser_fixtures import log_in
from tests.images import jpeg_bytes
from webapp.images.ingest import ingest_image
from webapp.images.models import Box, LabelClass

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def reviewed_image(dataset, labeler, tiny_detector):
    image = ingest_image(jpeg_bytes(400, 300, seed=9), dataset=dataset, user=labeler)
    rbc = LabelClass.objects.create(dataset=dataset, name="RBC", color="#e6194b")
    wbc = LabelClass.objects.create(dataset=dataset, name="WBC", color="#3cb44b")
    Box.objects.create(image=image, label_class=rbc, x1=10, y1=10, x2=60, y2=60)
    for score, cls in [(0.95, rbc), (0.6, rbc), (0.3, wbc), (0.1, wbc)]:
        Box.objects.create(
            image=image,
            label_class=cls,
            x1=100 * score,
            y1=20,
            x2=100 * score + 50,
            y2=80,
            origin="model",
            model_version=tiny_detector,
            score=score,
        )
    return image


def counts(page):
    rows = page.locator("#class-counts tbody tr")
    return {
        rows.nth(i).get_attribute("data-label"): (
            int(rows.nth(i).locator(".n-human").inner_text()),
            int(rows.nth(i).locator(".n-model").inner_text()),
        )
        for i in range(rows.count())
    }


def test_slider_hides_low_confidence_predictions(page, live_server, labeler, reviewed_image):
    log_in(page, live_server.url, labeler.username)
    page.goto(f"{live_server.url}/images/{reviewed_image.pk}/")
    # Default threshold 0.25: the 0.1 prediction is hidden.
    expect(page.locator("#overlay g.box.model")).to_have_count(3)
    expect(page.locator("#overlay g.box.human")).to_have_count(1)
    assert counts(page) == {"RBC": (1, 2), "WBC": (0, 1)}
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.locator("#conf").fill("0.7")
    expect(page.locator("#overlay g.box.model")).to_have_count(1)
    assert counts(page) == {"RBC": (1, 1), "WBC": (0, 0)}
    assert page.locator("#overlay g.box.model text").text_content() == "RBC 0.95"
    assert requests == []  # filtering happened in the page
    page.uncheck("#show-human")
    expect(page.locator("#overlay g.box.human")).to_have_count(0)
    page.screenshot(path="/tmp/workbench-screenshots/review.png", full_page=True)


def test_run_detection_from_the_page(
    page, live_server, labeler, reviewed_image, settings, tiny_detector
):
    settings.JOBS_IN_PROCESS = True
    log_in(page, live_server.url, labeler.username)
    page.goto(f"{live_server.url}/images/{reviewed_image.pk}/")
    page.click("#run-detect")
    page.wait_for_url(
        f"{live_server.url}/images/{reviewed_image.pk}/?model_version={tiny_detector.pk}",
        timeout=30000,
    )
    page.locator("#conf").fill("0")
    stored = Box.objects.filter(image=reviewed_image, origin="model")
    # The job replaced the four hand-made predictions with the model's own.
    assert stored.count() > 4 and not stored.filter(score__in=[0.95, 0.6, 0.3, 0.1]).exists()
    expect(page.locator("#overlay g.box.model")).to_have_count(stored.count())


def test_gallery_shows_box_counts(page, live_server, labeler, reviewed_image):
    log_in(page, live_server.url, labeler.username)
    page.goto(f"{live_server.url}/?dataset={reviewed_image.dataset_id}")
    expect(page.locator("#gallery li.tile .counts")).to_have_text("1 labeled · 4 predicted")


def test_the_user_chooses_the_detector_the_datasets_serving_one_first(
    page, live_server, labeler, reviewed_image, tiny_detector, settings
):
    from training.models import ModelVersion
    from webapp.jobs.models import Job

    settings.JOBS_IN_PROCESS = True
    own = ModelVersion.objects.create(
        kind="detector",
        name="cells v2",
        file=tiny_detector.file.name,
        sha256=tiny_detector.sha256,
        config=tiny_detector.config,
        class_names=tiny_detector.class_names,
        dataset=reviewed_image.dataset,
    )
    from training.models import Promotion

    Promotion.objects.create(dataset=reviewed_image.dataset, kind="detector", version=own)
    log_in(page, live_server.url, labeler.username)
    page.goto(f"{live_server.url}/images/{reviewed_image.pk}/")
    options = page.locator("#model-version option")
    expect(options).to_have_count(2)
    assert options.nth(0).get_attribute("value") == str(own.pk)  # what serves the dataset
    expect(options.nth(0)).to_contain_text("serves this dataset")
    expect(options.nth(1)).not_to_contain_text("serves")
    # The hand-made predictions belong to the other version: hidden while "own" is chosen.
    expect(page.locator("#overlay g.box.model")).to_have_count(0)
    page.select_option("#model-version", str(tiny_detector.pk))
    expect(page.locator("#overlay g.box.model")).to_have_count(3)
    page.select_option("#model-version", str(own.pk))
    page.click("#run-detect")
    page.wait_for_url(f"**/images/{reviewed_image.pk}/?model_version={own.pk}", timeout=30000)
    job = Job.objects.get(kind="detect")
    assert job.params["model_version"] == own.pk and job.status == "done"
    assert Box.objects.filter(image=reviewed_image, model_version=own).count() > 0
