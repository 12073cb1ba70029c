"""The faces API answering inline (``?wait=``): jobs run in a thread of the test server."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.faces.conftest import EMBEDDING_ATOL, encode, pixels_of, reference_distance
from webapp.faces import enrollment
from webapp.faces.models import Face
from webapp.images.models import Image
from webapp.jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _jobs_in_process(settings):
    settings.JOBS_IN_PROCESS = True


def photo(data: bytes, name: str = "face.pgm") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def test_verify_and_recognize_wait_for_the_answer_by_default(labeler_api, tiny_verifier, orl):
    """As CompreFace and DeepStack answer: the result in the response, no ?wait needed."""
    verify = labeler_api.post(
        "/api/v1/faces/verify/",
        {"source_image": photo(orl(1)), "target_image": photo(orl(2))},
        format="multipart",
    )
    recognize = labeler_api.post(
        "/api/v1/faces/recognize/", {"image": photo(orl(1))}, format="multipart"
    )
    assert verify.status_code == 200, verify.json()
    assert recognize.status_code == 200, recognize.json()
    expected = reference_distance(tiny_verifier, pixels_of(orl(1)), pixels_of(orl(2)))
    assert verify.json()["distance"] == pytest.approx(expected, abs=EMBEDDING_ATOL)
    assert recognize.json()["faces"][0]["label"] == "unknown"  # nobody is enrolled
    assert Job.objects.filter(status="done").count() == 2


@pytest.mark.parametrize("wait", ["abc", "-1", "nan", "inf"])
def test_a_bad_wait_is_refused_before_any_job(labeler_api, tiny_verifier, orl, wait):
    response = labeler_api.post(
        f"/api/v1/faces/recognize/?wait={wait}", {"image": photo(orl(1))}, format="multipart"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    assert "wait" in response.json()["error"]["message"]
    assert Job.objects.count() == 0


def test_verify_answers_inline(labeler_api, tiny_verifier, orl):
    response = labeler_api.post(
        "/api/v1/faces/verify/?wait=30",
        {"source_image": photo(orl(1)), "target_image": photo(orl(2))},
        format="multipart",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    expected = reference_distance(tiny_verifier, pixels_of(orl(1)), pixels_of(orl(2)))
    assert body["distance"] == pytest.approx(expected, abs=EMBEDDING_ATOL)
    assert body["verified"] is False and body["threshold"] == pytest.approx(0.015)
    assert body["model_version"]["id"] == tiny_verifier.pk
    assert set(body) >= {
        "verified", "distance", "similarity", "threshold", "model_version", "source_face",
        "target_face", "inference_ms", "notes", "warnings", "job",
    }  # fmt: skip
    assert body["source_face"]["box"] == {"x1": 0.0, "y1": 0.0, "x2": 92.0, "y2": 112.0}
    assert body["source_face"]["score"] == 1.0 and body["inference_ms"] > 0
    assert Job.objects.get(pk=body["job"]).status == "done"


def test_verify_reports_several_faces(labeler_api, tiny_verifier, tiny_face_detector):
    rng = np.random.default_rng(3)
    group = encode(rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8))
    response = labeler_api.post(
        "/api/v1/faces/verify/?wait=30",
        {"source_image": photo(group, "g.png"), "target_image": photo(group, "g.png")},
        format="multipart",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    found = body["target_face"]["faces_found"]
    assert (
        found > 1 and f"target_image: {found} faces found; compared the largest." in body["notes"]
    )
    assert body["distance"] < EMBEDDING_ATOL


def test_verify_with_no_face_is_422_and_stores_nothing(
    labeler_api, tiny_verifier, blind_face_detector, orl
):
    wall = encode(np.full((300, 300, 3), 90, dtype=np.uint8))
    response = labeler_api.post(
        "/api/v1/faces/verify/?wait=30",
        {"source_image": photo(orl(1)), "target_image": photo(wall, "wall.png")},
        format="multipart",
    )
    assert response.status_code == 422, response.json()
    error = response.json()["error"]
    assert error["code"] == "no_face" and error["message"].startswith("target_image: no face found")
    assert error["details"]["job"] == Job.objects.get().pk
    assert not Face.objects.exists() and not Image.objects.exists()


def test_enroll_then_recognize(labeler_api, viewer_api, tiny_verifier, orl):
    alice = enrollment.create_subject("Alice")
    bob = enrollment.create_subject("Bob")
    for subject, person in ((alice, 1), (bob, 2)):
        response = labeler_api.post(
            f"/api/v1/faces/subjects/{subject.pk}/faces/?wait=30",
            {"image": [photo(orl(person, 1), "1.pgm"), photo(orl(person, 2), "2.pgm")]},
            format="multipart",
        )
        assert response.status_code == 201, response.json()
        assert len(response.json()["faces"]) == 2
    assert Face.objects.count() == 4 and Image.objects.count() == 4
    response = viewer_api.post(
        "/api/v1/faces/recognize/?wait=30",
        {"image": photo(orl(2, 2)), "top_k": "2"},
        format="multipart",
    )
    assert response.status_code == 200, response.json()
    [face] = response.json()["faces"]
    assert face["label"] == "Bob" and face["subject"] == {"id": bob.pk, "name": "Bob"}
    assert face["distance"] < EMBEDDING_ATOL
    assert [c["subject"]["name"] for c in face["candidates"]] == ["Bob", "Alice"]
    assert response.json()["gallery"] == {"faces": 4, "subjects": 2, "stale_faces": 0}


def test_enroll_with_no_face_is_422_and_enrolls_nothing(
    labeler_api, tiny_verifier, blind_face_detector, orl
):
    alice = enrollment.create_subject("Alice")
    wall = encode(np.full((300, 300, 3), 90, dtype=np.uint8))
    response = labeler_api.post(
        f"/api/v1/faces/subjects/{alice.pk}/faces/?wait=30",
        {"image": [photo(orl(1), "ok.pgm"), photo(wall, "wall.png")]},
        format="multipart",
    )
    assert response.status_code == 422, response.json()
    assert response.json()["error"]["code"] == "no_face"
    assert "wall.png" in response.json()["error"]["message"]
    assert not Face.objects.exists() and not Image.objects.exists()


def test_cmyk_rgba_and_grey_uploads_are_the_same_face(labeler_api, tiny_verifier, orl):
    grey = pixels_of(orl(9))
    cmyk = encode(grey, "JPEG", "CMYK", quality=100)
    rgba = encode(grey, "PNG", "RGBA")
    dana = enrollment.create_subject("Dana")
    enrolled = labeler_api.post(
        f"/api/v1/faces/subjects/{dana.pk}/faces/?wait=30",
        {"image": photo(cmyk, "cmyk.jpg")},
        format="multipart",
    )
    assert enrolled.status_code == 201, enrolled.json()
    assert Image.objects.get().format == "JPEG"
    for data, name in ((rgba, "rgba.png"), (orl(9), "grey.pgm")):
        response = labeler_api.post(
            "/api/v1/faces/recognize/?wait=30", {"image": photo(data, name)}, format="multipart"
        )
        face = response.json()["faces"][0]
        assert face["label"] == "Dana" and face["distance"] < EMBEDDING_ATOL, (name, face)
