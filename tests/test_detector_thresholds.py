"""A detector version's working threshold and calibrated confidence, through every door.

The tiny (untrained) detector's raw scores all lie in about [0.318, 0.331] on this photo,
so the hand-made calibration below is steep there: overall 0.318 -> 0.1 .. 0.324 -> 0.9, and
RBC's own curve tops out at 0.45, below the working threshold 0.5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile

from inference.calibration import ScoreCalibration
from tests.images import jpeg_bytes
from tests.openapi_check import assert_documented
from webapp.detection import services
from webapp.images.ingest import ingest_image
from webapp.images.models import Box, Image
from webapp.jobs.models import Job
from webapp.jobs.runner import execute_job

pytestmark = pytest.mark.django_db

CALIBRATION = {
    "format": 1,
    "method": "by hand",
    "score_floor": 0.001,
    "min_outcomes": 30,
    "overall": {"x": [0.318, 0.324], "y": [0.1, 0.9], "n": 100, "positives": 50},
    "per_class": {"1": {"x": [0.318, 0.331], "y": [0.05, 0.45], "n": 100, "positives": 25}},
}
WORKING = 0.5
# Predictions carry raw scores rounded to 4 decimals; the steepest curve (0.8 per 0.006)
# turns that rounding into this much calibrated difference, plus confidence's own rounding.
ROUNDING = 0.8 / 0.006 * 5e-5 + 5e-5


@pytest.fixture
def calibrated(tiny_detector: Any) -> Any:
    tiny_detector.metrics = {
        "threshold": WORKING,
        "threshold_rule": "max_f1",
        "threshold_scale": "calibrated",
        "threshold_raw": 0.324,
        "score_calibration": CALIBRATION,
    }
    tiny_detector.save(update_fields=["metrics"])
    return tiny_detector


@pytest.fixture
def stored_image(dataset: Any, labeler: Any) -> Image:
    return ingest_image(jpeg_bytes(200, 150, seed=4), dataset=dataset, user=labeler)


def detect(labeler_api: Any, **payload: Any) -> dict[str, Any]:
    """POST /api/v1/detect/ (job at once), run the job here, return its single-image result."""
    response = labeler_api.post("/api/v1/detect/?wait=0", payload, format="json")
    assert response.status_code == 202, response.json()
    job = Job.objects.get(pk=response.json()["job"]["id"])
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == "done", job.error
    result = dict(job.result or {})
    return {**result, **result["images"][0], "params": job.params}


def expected_confidence(predictions: list[dict[str, Any]]) -> np.ndarray:
    names = ["Platelets", "RBC", "WBC"]
    calibration = ScoreCalibration.from_dict(CALIBRATION)
    raw = [p["raw_score"] for p in predictions]
    return calibration.calibrate(raw, [names.index(p["label"]) for p in predictions])


def test_no_min_confidence_means_the_working_threshold_on_calibrated_confidence(
    labeler_api, calibrated, stored_image
):
    everything = detect(labeler_api, image_ids=[stored_image.pk], min_confidence=0.0)
    default = detect(labeler_api, image_ids=[stored_image.pk])
    assert default["params"]["min_confidence"] is None
    assert (default["min_confidence"], default["confidence_scale"]) == (WORKING, "calibrated")
    all_conf = [p["confidence"] for p in everything["predictions"]]
    np.testing.assert_allclose(
        all_conf, expected_confidence(everything["predictions"]), atol=ROUNDING
    )
    kept = default["predictions"]
    assert kept and all(p["confidence"] >= WORKING for p in kept)
    assert len(kept) == sum(c >= WORKING for c in all_conf)
    assert not [p for p in kept if p["label"] == "RBC"], "RBC's own curve stays below 0.5"
    assert any(p["label"] == "RBC" for p in everything["predictions"])


def test_a_client_threshold_applies_to_the_calibrated_confidence(
    labeler_api, calibrated, stored_image
):
    everything = detect(labeler_api, image_ids=[stored_image.pk], min_confidence=0.0)
    some = detect(labeler_api, image_ids=[stored_image.pk], min_confidence=0.3)
    conf = [p["confidence"] for p in everything["predictions"]]
    assert len(some["predictions"]) == sum(c >= 0.3 for c in conf) > 0
    assert all(p["confidence"] >= 0.3 for p in some["predictions"])
    np.testing.assert_allclose(
        [p["confidence"] for p in some["predictions"]],
        expected_confidence(some["predictions"]),
        atol=ROUNDING,
    )
    # Stored model boxes hold the confidence as served (the review page filters on it).
    boxes = Box.objects.filter(image=stored_image, origin="model")
    stored = sorted(float(b.score or 0) for b in boxes)
    served = sorted(p["confidence"] for p in some["predictions"])
    np.testing.assert_allclose(stored, served, atol=5e-5)


def test_a_version_without_calibration_serves_raw_scores_at_its_default(
    labeler_api, tiny_detector, stored_image
):
    result = detect(labeler_api, image_ids=[stored_image.pk])
    assert (result["min_confidence"], result["confidence_scale"]) == (0.25, "raw")
    assert result["predictions"]
    assert all(p["confidence"] == p["raw_score"] >= 0.25 for p in result["predictions"])
    assert services.working_threshold(tiny_detector) == 0.25


def test_an_unreadable_calibration_falls_back_to_the_raw_threshold(
    labeler_api, calibrated, stored_image
):
    calibrated.metrics = {**calibrated.metrics, "score_calibration": {"format": 99}}
    calibrated.save(update_fields=["metrics"])
    assert services.working_threshold(calibrated) == 0.324
    result = detect(labeler_api, image_ids=[stored_image.pk])
    assert (result["min_confidence"], result["confidence_scale"]) == (0.324, "raw")
    assert all(p["confidence"] == p["raw_score"] >= 0.324 for p in result["predictions"])


def test_working_threshold_is_what_the_lead_calls(calibrated):
    assert services.working_threshold(calibrated) == WORKING
    assert services.scores_of(calibrated).scale == "calibrated"


def test_review_page_starts_the_slider_at_the_working_threshold(
    client, labeler, calibrated, stored_image
):
    client.force_login(labeler)
    page = client.get(f"/images/{stored_image.pk}/").content.decode()
    assert 'id="conf" min="0" max="1" step="0.01" value="0.50"' in page
    assert '<output id="conf-value">0.50</output>' in page
    calibrated.metrics = {**calibrated.metrics, "threshold": 0.369}
    calibrated.save(update_fields=["metrics"])
    page = client.get(f"/images/{stored_image.pk}/").content.decode()
    assert 'value="0.36"' in page, "rounded down: the page shows what the API would return"


@pytest.mark.parametrize(("working", "floor"), [(WORKING, 0.05), (0.03, 0.03)])
def test_run_detection_stores_boxes_down_to_a_floor(
    client, labeler, calibrated, stored_image, working, floor
):
    calibrated.metrics = {**calibrated.metrics, "threshold": working}
    calibrated.save(update_fields=["metrics"])
    client.force_login(labeler)
    response = client.post(f"/images/{stored_image.pk}/detect/", {"model_version": calibrated.pk})
    assert response.status_code == 302
    assert Job.objects.get().params["min_confidence"] == floor


def test_recalibrating_boxes_stored_with_raw_scores(labeler_api, tiny_detector, stored_image):
    detect(labeler_api, image_ids=[stored_image.pk], min_confidence=0.0)  # raw scores
    boxes = list(Box.objects.filter(image=stored_image, origin="model").order_by("pk"))
    assert services.recalibrate_stored_boxes(tiny_detector) == 0, "no calibration yet"
    tiny_detector.metrics = {"threshold": WORKING, "score_calibration": CALIBRATION}
    tiny_detector.save(update_fields=["metrics"])
    assert services.recalibrate_stored_boxes(tiny_detector) == len(boxes)
    names = ["Platelets", "RBC", "WBC"]
    labels = [names.index(b.label_class.name) for b in boxes]
    want = ScoreCalibration.from_dict(CALIBRATION).calibrate([b.score for b in boxes], labels)
    got = Box.objects.filter(pk__in=[b.pk for b in boxes]).order_by("pk")
    np.testing.assert_allclose([b.score for b in got], want, atol=1e-12)


@pytest.mark.django_db(transaction=True)
def test_deepstack_uses_the_working_threshold_and_keeps_its_fields(
    client, labeler, calibrated, settings
):
    from webapp.accounts.models import ApiToken

    settings.JOBS_IN_PROCESS = True
    _, key = ApiToken.issue(labeler, "deepstack")

    schema = yaml.safe_load(client.get("/api/v1/schema/", HTTP_X_API_KEY=key).content)

    def ask(**form: Any) -> list[dict[str, Any]]:
        image = SimpleUploadedFile("cells.jpg", jpeg_bytes(200, 150, seed=4))
        response = client.post("/v1/vision/detection", {"image": image, "api_key": key, **form})
        assert response.status_code == 200, response.json()
        # DeepStack's answer as our schema documents it, so generated clients can read it
        assert_documented(schema, "POST", "/v1/vision/detection", 200, response.json())
        return list(response.json()["predictions"])

    default, all_of_them, strict = ask(), ask(min_confidence="0"), ask(min_confidence="0.7")
    refused = client.post("/v1/vision/detection?wait=0", {"api_key": key})
    assert_documented(schema, "POST", "/v1/vision/detection", 400, refused.json())
    assert default and all(p["confidence"] >= WORKING for p in default)
    assert len(default) == sum(p["confidence"] >= WORKING for p in all_of_them)
    assert strict and all(p["confidence"] >= 0.7 for p in strict) and len(strict) < len(default)
    assert set(default[0]) == {"label", "confidence", "x_min", "y_min", "x_max", "y_max"}


@pytest.mark.django_db(transaction=True)
def test_native_answer_carries_confidence_and_raw_score(labeler_api, calibrated, settings):
    settings.JOBS_IN_PROCESS = True
    image = SimpleUploadedFile("cells.jpg", jpeg_bytes(200, 150, seed=4))
    response = labeler_api.post("/api/v1/detect/", {"image": image}, format="multipart")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["min_confidence"], body["confidence_scale"]) == (WORKING, "calibrated")
    assert body["predictions"]
    for p in body["predictions"]:
        assert set(p) == {"label", "confidence", "raw_score", "x_min", "y_min", "x_max", "y_max"}
        assert p["confidence"] >= WORKING and p["label"] != "RBC"
