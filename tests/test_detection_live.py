"""Detection requests that wait for their job: a real worker, and the DeepStack client."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.images import jpeg_bytes
from tests.worker import Worker
from webapp.accounts.models import ApiToken
from webapp.jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.worker
def test_detect_upload_runs_on_the_gpu_queue_worker(tmp_path, labeler_api, tiny_detector, settings):
    worker = Worker(tmp_path / "worker.log")
    try:
        response = labeler_api.post(
            "/api/v1/detect/?wait=60",
            {
                "image": SimpleUploadedFile("cells.jpg", jpeg_bytes(320, 240, seed=1)),
                "min_confidence": "0.0",
            },
            format="multipart",
        )
    finally:
        worker.stop()
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["model_version"]["id"] == tiny_detector.pk
    assert body["predictions"] and body["inference_ms"] > 0
    assert all(p["x_max"] <= 320 and p["y_max"] <= 240 for p in body["predictions"])
    job = Job.objects.get(pk=body["job"])
    assert job.queue == settings.JOB_QUEUE_GPU and job.status == "done"


def test_detect_with_wait_0_returns_the_job_at_once(labeler_api, tiny_detector, settings):
    settings.JOBS_IN_PROCESS = True
    response = labeler_api.post(
        "/api/v1/detect/?wait=0",
        {"image": SimpleUploadedFile("a.jpg", jpeg_bytes())},
        format="multipart",
    )
    assert response.status_code == 202
    job = response.json()["job"]
    assert job["kind"] == "detect" and job["params"]["uploads"] == [
        {"name": "a.jpg", "field": "image"}
    ]
    assert str(settings.MEDIA_ROOT) not in response.content.decode()


def test_detect_waits_for_the_answer_by_default(labeler_api, tiny_detector, settings):
    settings.JOBS_IN_PROCESS = True  # a thread runs the job: the request's wait sees it done
    response = labeler_api.post(
        "/api/v1/detect/",
        {"image": SimpleUploadedFile("a.jpg", jpeg_bytes()), "min_confidence": "0.0"},
        format="multipart",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["predictions"] and body["model_version"]["id"] == tiny_detector.pk
    assert Job.objects.get(pk=body["job"]).status == "done"


def test_deepstack_client_talks_to_our_endpoint(live_server, labeler, tiny_detector, settings):
    from deepstack.core import DeepstackException, DeepstackObject  # type: ignore[import-untyped]

    settings.JOBS_IN_PROCESS = True
    _, key = ApiToken.issue(labeler, "deepstack")
    host, port = live_server.url.removeprefix("http://").split(":")
    client = DeepstackObject(ip=host, port=int(port), api_key=key, timeout=60, min_confidence=0.0)
    predictions = client.detect(jpeg_bytes(300, 200, seed=2))
    assert predictions, "the untrained model still returns low-confidence boxes at 0.0"
    for p in predictions:
        assert set(p) >= {"label", "confidence", "x_min", "y_min", "x_max", "y_max"}
        assert isinstance(p["x_min"], int) and 0 <= p["x_min"] < p["x_max"] <= 300
    bad = DeepstackObject(ip=host, port=int(port), api_key="wrong-key", timeout=30)
    with pytest.raises(DeepstackException):
        bad.detect(jpeg_bytes())


def test_deepstack_errors_keep_its_shape(client, labeler, tiny_detector):
    _, key = ApiToken.issue(labeler, "deepstack")
    response = client.post("/v1/vision/detection", {"api_key": key})
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": "No `image` file in the request.",
        "code": 400,
    }
    response = client.post(
        "/v1/vision/detection", {"image": SimpleUploadedFile("a.jpg", jpeg_bytes())}
    )
    assert response.status_code == 401 and response.json()["success"] is False
