"""Detection through jobs: stored images get model boxes; uploads get an answer."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.images import jpeg_bytes
from webapp.detection import services
from webapp.images.ingest import ingest_image
from webapp.images.models import Box, Image
from webapp.jobs.models import Job
from webapp.jobs.runner import execute_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored_image(dataset, labeler):
    return ingest_image(jpeg_bytes(200, 150, seed=4), dataset=dataset, user=labeler)


def run_detect(labeler, **params):
    job = Job.objects.create(kind="detect", user=labeler, params=params)
    execute_job(job.pk)
    job.refresh_from_db()
    return job


def test_detect_job_stores_model_boxes_and_replaces_them(tiny_detector, stored_image, labeler):
    job = run_detect(labeler, image_ids=[stored_image.pk], min_confidence=0.0)
    assert job.status == "done", job.error
    predictions = job.result["images"][0]["predictions"]
    boxes = Box.objects.filter(image=stored_image, origin="model")
    assert len(predictions) > 0 and boxes.count() == len(predictions)
    for p in predictions:
        assert 0 <= p["x_min"] < p["x_max"] <= 200 and 0 <= p["y_min"] < p["y_max"] <= 150
        assert p["label"] in {"Platelets", "RBC", "WBC"}
    assert {b.model_version_id for b in boxes} == {tiny_detector.pk}
    assert Image.objects.get(pk=stored_image.pk).status == "predicted"
    again = run_detect(labeler, image_ids=[stored_image.pk], min_confidence=0.0)
    assert Box.objects.filter(image=stored_image, origin="model").count() == len(
        again.result["images"][0]["predictions"]
    )


def test_min_confidence_filters(tiny_detector, stored_image, labeler):
    low = run_detect(labeler, image_ids=[stored_image.pk], min_confidence=0.0)
    scores = [p["confidence"] for p in low.result["images"][0]["predictions"]]
    cut = sorted(scores)[len(scores) // 2]
    high = run_detect(labeler, image_ids=[stored_image.pk], min_confidence=cut)
    kept = [p["confidence"] for p in high.result["images"][0]["predictions"]]
    assert kept and min(kept) >= cut and len(kept) < len(scores)


def test_no_active_model_is_a_clear_failure(stored_image, labeler):
    job = run_detect(labeler, image_ids=[stored_image.pk])
    assert job.status == "failed"
    assert "No detector model is active yet" in job.error


def test_predictor_is_loaded_once_and_reloaded_on_switch(tiny_detector):
    services._cache.clear()
    first = services.get_predictor(tiny_detector)
    assert services.get_predictor(tiny_detector) is first
    tiny_detector.pk = None  # a copy of the same file registered as a new version
    tiny_detector.is_active = False
    tiny_detector.save()
    tiny_detector.activate()
    assert services.get_predictor(services.resolve_version(None)) is not first


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({}, 400, "invalid"),
        ({"image_ids": [424242]}, 404, "unknown_image"),
        ({"image_ids": [10**25]}, 400, "invalid"),
        ({"image_ids": [1], "min_confidence": 3}, 400, "invalid"),
    ],
)
def test_bad_requests(labeler_api, tiny_detector, payload, status, code):
    response = labeler_api.post("/api/v1/detect/", payload, format="json")
    assert response.status_code == status, response.json()
    assert response.json()["error"]["code"] == code


def test_corrupt_upload_is_refused_before_any_job(labeler_api, tiny_detector):
    response = labeler_api.post(
        "/api/v1/detect/",
        {
            "image": SimpleUploadedFile("x.jpg", b"\xff\xd8\xff garbage"),
        },
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"not_an_image", "corrupt_image"}
    assert Job.objects.count() == 0


def test_viewer_cannot_detect(viewer_api, tiny_detector):
    response = viewer_api.post(
        "/api/v1/detect/",
        {
            "image": SimpleUploadedFile("x.jpg", jpeg_bytes()),
        },
        format="multipart",
    )
    assert response.status_code == 403


def test_transient_upload_is_deleted_after_detection(labeler_api, tiny_detector, settings):
    from pathlib import Path

    from webapp.jobs.models import Job

    response = labeler_api.post(
        "/api/v1/detect/?wait=0",
        {"image": SimpleUploadedFile("a.jpg", jpeg_bytes())},
        format="multipart",
    )
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["job"]["id"])
    [entry] = job.params["uploads"]
    temp = Path(settings.MEDIA_ROOT) / entry["stash"]
    assert temp.exists()
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == "done" and not temp.exists()


def _second_detector(tiny_detector, dataset=None):
    """Another version of the same weights, trained (as far as the rows say) on ``dataset``."""
    from training.models import ModelVersion

    return ModelVersion.objects.create(
        kind=tiny_detector.kind,
        name="other",
        file=tiny_detector.file.name,
        sha256=tiny_detector.sha256,
        config=tiny_detector.config,
        class_names=tiny_detector.class_names,
        dataset=dataset,
    )


@pytest.mark.parametrize("where", ["query", "form"])
def test_model_version_is_honoured_as_query_parameter_and_form_field(
    labeler_api, tiny_detector, where
):
    other = _second_detector(tiny_detector)
    url = "/api/v1/detect/?wait=0"
    data: dict[str, object] = {"image": SimpleUploadedFile("a.jpg", jpeg_bytes())}
    if where == "query":
        url += f"&model_version={other.pk}"
    else:
        data["model_version"] = str(other.pk)
    response = labeler_api.post(url, data, format="multipart")
    assert response.status_code == 202, response.json()
    job = Job.objects.get(pk=response.json()["job"]["id"])
    assert job.params["model_version"] == other.pk
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == "done" and job.result["model_version"]["id"] == other.pk


def test_an_unknown_model_version_is_refused_before_any_job(labeler_api, tiny_detector):
    response = labeler_api.post(
        "/api/v1/detect/?wait=0&model_version=999999",
        {"image": SimpleUploadedFile("a.jpg", jpeg_bytes())},
        format="multipart",
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_model_version"
    assert Job.objects.count() == 0


@pytest.mark.parametrize("wait", ["abc", "-3", "nan"])
def test_a_bad_wait_is_refused_before_any_job(labeler_api, tiny_detector, stored_image, wait):
    response = labeler_api.post(
        f"/api/v1/detect/?wait={wait}", {"image_ids": [stored_image.pk]}, format="json"
    )
    assert response.status_code == 400 and "wait" in response.json()["error"]["message"]
    assert Job.objects.count() == 0 and not Box.objects.exists()


def test_a_dataset_is_served_by_the_version_promoted_for_it(
    labeler_api, tiny_detector, stored_image, dataset
):
    from training.models import Promotion

    own = _second_detector(tiny_detector, dataset=dataset)
    # Trained on the dataset but not promoted: listed right after what serves, not serving.
    assert services.detector_choices(dataset)[:2] == [tiny_detector, own]
    assert services.resolve_version(None, dataset=dataset) == tiny_detector
    Promotion.objects.create(dataset=dataset, kind="detector", version=own)
    assert services.detector_choices(dataset)[0] == own
    assert services.detector_choices(None)[0] == tiny_detector  # workbench-wide
    response = labeler_api.post(
        "/api/v1/detect/?wait=0", {"image_ids": [stored_image.pk]}, format="json"
    )
    job = Job.objects.get(pk=response.json()["job"]["id"])
    assert job.params["model_version"] == own.pk and job.dataset_id == dataset.pk
    upload = labeler_api.post(
        "/api/v1/detect/?wait=0",
        {"image": SimpleUploadedFile("a.jpg", jpeg_bytes()), "dataset": str(dataset.pk)},
        format="multipart",
    )
    assert Job.objects.get(pk=upload.json()["job"]["id"]).params["model_version"] == own.pk
    plain = labeler_api.post(
        "/api/v1/detect/?wait=0",
        {"image": SimpleUploadedFile("b.jpg", jpeg_bytes(seed=3))},
        format="multipart",
    )
    assert Job.objects.get(pk=plain.json()["job"]["id"]).params["model_version"] == (
        tiny_detector.pk
    )
