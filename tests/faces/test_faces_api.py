"""The faces API without running model jobs: validation, refusals, subjects, permissions.

Requests that pass validation start a job; these tests stop at the job row (no worker)
or call the runner directly, where the answer itself is checked in test_faces_api_jobs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import token_client
from tests.images import jpeg_bytes, truncated_jpeg_bytes
from webapp.faces import enrollment, services
from webapp.faces.models import Face, Subject
from webapp.images.models import Image
from webapp.jobs.models import Job
from webapp.jobs.runner import execute_job

pytestmark = pytest.mark.django_db


def photo(data: bytes, name: str = "face.pgm") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def error_of(response) -> dict:
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


def nothing_stored() -> bool:
    return not (Job.objects.exists() or Face.objects.exists() or Image.objects.exists())


# ---------------------------------------------------------------------------- verify


def test_verify_starts_a_gpu_job_with_the_uploads(labeler_api, tiny_verifier, orl, settings):
    response = labeler_api.post(
        "/api/v1/faces/verify/?wait=0",
        {"source_image": photo(orl(1)), "target_image": photo(orl(2)), "threshold": "0.3"},
        format="multipart",
    )
    assert response.status_code == 202, response.json()
    shown = response.json()["job"]["params"]
    assert shown["uploads"] == [
        {"name": "face.pgm", "field": "source_image"},
        {"name": "face.pgm", "field": "target_image"},
    ]
    assert str(settings.MEDIA_ROOT) not in response.content.decode()
    assert "tmp/" not in response.content.decode()
    job = Job.objects.get(pk=response.json()["job"]["id"])
    assert job.kind == "verify" and job.queue == settings.JOB_QUEUE_GPU
    assert job.params["threshold"] == 0.3 and job.params["detect_faces"] is True
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == "done" and job.result["threshold"] == 0.3
    assert job.result["source_face"]["box"] == {"x1": 0.0, "y1": 0.0, "x2": 92.0, "y2": 112.0}
    stashes = [Path(settings.MEDIA_ROOT) / u["stash"] for u in job.params["uploads"]]
    assert len(stashes) == 2 and not any(p.exists() for p in stashes)  # deleted once read


@pytest.mark.parametrize(
    ("fields", "status", "code", "named"),
    [
        ({"target_image": "orl"}, 400, "invalid", "source_image"),
        ({"source_image": "orl"}, 400, "invalid", "target_image"),
        (
            {"source_image": "orl", "target_image": "orl", "threshold": "abc"},
            400,
            "invalid",
            "threshold",
        ),
        (
            {"source_image": "orl", "target_image": "orl", "threshold": "-1"},
            400,
            "invalid",
            "threshold",
        ),
        (
            {"source_image": "orl", "target_image": "orl", "threshold": "nan"},
            400,
            "invalid",
            "threshold",
        ),
        (
            {"source_image": "orl", "target_image": "orl", "source_box": "1,2,3"},
            400,
            "invalid",
            "source_box",
        ),
        ({"source_image": "orl", "target_image": "garbage"}, 400, "not_an_image", "target_image"),
        (
            {"source_image": "truncated", "target_image": "orl"},
            400,
            "corrupt_image",
            "source_image",
        ),
        ({"source_image": "empty", "target_image": "orl"}, 400, "empty_file", "source_image"),
        ({"source_image": "large", "target_image": "orl"}, 503, "no_face_detector", "source_image"),
    ],
)
def test_verify_refuses_bad_requests_before_any_job(
    labeler_api, tiny_verifier, orl, fields, status, code, named
):
    files = {
        "orl": lambda: orl(1),
        "garbage": lambda: b"definitely not an image",
        "truncated": truncated_jpeg_bytes,
        "empty": lambda: b"",
        "large": lambda: jpeg_bytes(640, 480),
    }
    data = {k: (photo(files[v]()) if v in files else v) for k, v in fields.items()}
    response = labeler_api.post("/api/v1/faces/verify/", data, format="multipart")
    assert response.status_code == status, response.json()
    error = error_of(response)
    assert error["code"] == code and named in error["message"]
    assert nothing_stored()


def test_viewer_may_verify_and_recognize(viewer_api, tiny_verifier, orl):
    verify = viewer_api.post(
        "/api/v1/faces/verify/?wait=0",
        {"source_image": photo(orl(1)), "target_image": photo(orl(1))},
        format="multipart",
    )
    recognize = viewer_api.post(
        "/api/v1/faces/recognize/?wait=0", {"image": photo(orl(1))}, format="multipart"
    )
    assert verify.status_code == 202 and recognize.status_code == 202


def test_every_endpoint_needs_authentication(client, tiny_verifier):
    paths = [
        ("post", "/api/v1/faces/verify/"),
        ("post", "/api/v1/faces/recognize/"),
        ("get", "/api/v1/faces/subjects/"),
        ("post", "/api/v1/faces/subjects/"),
        ("get", "/api/v1/faces/subjects/1/"),
        ("get", "/api/v1/faces/subjects/1/faces/"),
        ("delete", "/api/v1/faces/faces/1/"),
        ("post", "/api/v1/faces/reembed/"),
    ]
    for method, path in paths:
        response = getattr(client, method)(path)
        assert response.status_code == 401, (method, path)
        assert error_of(response)["code"] == "not_authenticated"


def test_recognize_validates_its_options(labeler_api, tiny_verifier, orl):
    for field, value in [("top_k", "0"), ("limit", "-1"), ("min_score", "2"), ("threshold", "x")]:
        response = labeler_api.post(
            "/api/v1/faces/recognize/", {"image": photo(orl(1)), field: value}, format="multipart"
        )
        assert response.status_code == 400 and field in error_of(response)["message"]
    missing = labeler_api.post("/api/v1/faces/recognize/", {}, format="multipart")
    assert missing.status_code == 400 and "image" in error_of(missing)["message"]
    assert nothing_stored()


def test_no_verifier_is_503_before_any_job(labeler_api, orl):
    response = labeler_api.post(
        "/api/v1/faces/recognize/", {"image": photo(orl(1))}, format="multipart"
    )
    assert response.status_code == 503 and error_of(response)["code"] == "no_verifier"
    assert nothing_stored()


def test_a_refusal_inside_the_job_is_recorded_with_its_code(labeler_api, tiny_verifier, orl):
    response = labeler_api.post(
        "/api/v1/faces/recognize/?wait=0", {"image": photo(orl(1))}, format="multipart"
    )
    assert response.status_code == 202
    tiny_verifier.__class__.objects.update(is_active=False)  # switched off before it ran
    job = Job.objects.get()
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "No face verifier is active" in job.error
    assert job.result["error"]["code"] == "no_verifier" and job.result["error"]["status"] == 503


# ---------------------------------------------------------------------------- subjects


def test_subjects_crud(labeler_api, tiny_verifier):
    created = labeler_api.post("/api/v1/faces/subjects/", {"name": "Alice"}, format="json")
    assert created.status_code == 201
    alice = created.json()
    assert alice["name"] == "Alice" and alice["face_count"] == 0
    duplicate = labeler_api.post("/api/v1/faces/subjects/", {"name": "Alice"}, format="json")
    assert duplicate.status_code == 409 and error_of(duplicate)["code"] == "duplicate_subject"
    blank = labeler_api.post("/api/v1/faces/subjects/", {"name": "  "}, format="json")
    assert blank.status_code == 400 and "name" in error_of(blank)["message"]
    labeler_api.post("/api/v1/faces/subjects/", {"name": "Bob"}, format="json")
    listing = labeler_api.get("/api/v1/faces/subjects/").json()
    assert [s["name"] for s in listing["results"]] == ["Alice", "Bob"] and listing["count"] == 2
    renamed = labeler_api.patch(
        f"/api/v1/faces/subjects/{alice['id']}/", {"name": "Alicia"}, format="json"
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Alicia"
    clash = labeler_api.patch(
        f"/api/v1/faces/subjects/{alice['id']}/", {"name": "Bob"}, format="json"
    )
    assert clash.status_code == 409
    assert labeler_api.get(f"/api/v1/faces/subjects/{alice['id']}/").json()["name"] == "Alicia"
    assert labeler_api.delete(f"/api/v1/faces/subjects/{alice['id']}/").status_code == 204
    assert list(Subject.objects.values_list("name", flat=True)) == ["Bob"]


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_subject_is_404(labeler_api, tiny_verifier, method):
    response = getattr(labeler_api, method)(
        "/api/v1/faces/subjects/424242/", {"name": "x"}, format="json"
    )
    assert response.status_code == 404 and error_of(response)["code"] == "unknown_subject"
    faces = labeler_api.post(
        "/api/v1/faces/subjects/424242/faces/", {"image": photo(jpeg_bytes())}, format="multipart"
    )
    assert faces.status_code == 404 and error_of(faces)["code"] == "unknown_subject"
    assert nothing_stored()


def test_subjects_of_other_face_datasets_are_not_the_gallery(labeler_api, tiny_verifier):
    from webapp.images.models import Dataset

    orl_set = Dataset.objects.create(name="orl", task="faces")
    stranger = Subject.objects.create(dataset=orl_set, name="s1")
    assert labeler_api.get("/api/v1/faces/subjects/").json()["count"] == 0
    assert labeler_api.get(f"/api/v1/faces/subjects/{stranger.pk}/").status_code == 404


def test_viewer_reads_but_cannot_change_the_gallery(viewer_api, labeler, tiny_verifier, orl):
    bob = enrollment.create_subject("Bob", labeler)
    enrollment.enroll(bob, [services.read_image(orl(2), "b.pgm")])
    face = Face.objects.get()
    assert viewer_api.get("/api/v1/faces/subjects/").json()["count"] == 1
    listing = viewer_api.get(f"/api/v1/faces/subjects/{bob.pk}/faces/").json()
    assert [f["id"] for f in listing["results"]] == [face.pk]
    assert viewer_api.get(f"/api/v1/faces/faces/{face.pk}/").json()["subject"] == bob.pk
    refused = [
        viewer_api.post("/api/v1/faces/subjects/", {"name": "Eve"}, format="json"),
        viewer_api.patch(f"/api/v1/faces/subjects/{bob.pk}/", {"name": "Rob"}, format="json"),
        viewer_api.delete(f"/api/v1/faces/subjects/{bob.pk}/"),
        viewer_api.post(
            f"/api/v1/faces/subjects/{bob.pk}/faces/", {"image": photo(orl(3))}, format="multipart"
        ),
        viewer_api.delete(f"/api/v1/faces/faces/{face.pk}/"),
        viewer_api.post("/api/v1/faces/reembed/"),
    ]
    assert [r.status_code for r in refused] == [403] * 6
    assert Subject.objects.count() == 1 and Face.objects.count() == 1 and not Job.objects.exists()


# ---------------------------------------------------------------------------- faces


def test_enroll_one_or_many_photos(labeler_api, tiny_verifier, orl):
    bob = enrollment.create_subject("Bob")
    one = labeler_api.post(
        f"/api/v1/faces/subjects/{bob.pk}/faces/?wait=0",
        {"image": photo(orl(2, 1), "1.pgm")},
        format="multipart",
    )
    many = labeler_api.post(
        f"/api/v1/faces/subjects/{bob.pk}/faces/?wait=0",
        {"images": [photo(orl(2, 2), "2.pgm"), photo(orl(2, 3), "3.pgm")], "detect_faces": "false"},
        format="multipart",
    )
    assert one.status_code == 202 and many.status_code == 202
    jobs = Job.objects.filter(kind="enroll").order_by("id")
    assert [len(j.params["uploads"]) for j in jobs] == [1, 2]
    assert jobs[1].params["detect_faces"] is False
    for job in jobs:
        execute_job(job.pk)
    assert Face.objects.filter(subject=bob).count() == 3
    listing = labeler_api.get(f"/api/v1/faces/subjects/{bob.pk}/faces/").json()
    assert listing["count"] == 3 and all(
        f["embedding_version"] == tiny_verifier.pk for f in listing["results"]
    )
    assert labeler_api.get(f"/api/v1/faces/subjects/{bob.pk}/").json()["face_count"] == 3


def test_enroll_refusals(labeler_api, tiny_verifier, orl):
    bob = enrollment.create_subject("Bob")
    enrollment.enroll(bob, [services.read_image(orl(2), "2.pgm")])
    url = f"/api/v1/faces/subjects/{bob.pk}/faces/"
    duplicate = labeler_api.post(url, {"image": photo(orl(2), "again.pgm")}, format="multipart")
    assert duplicate.status_code == 409 and error_of(duplicate)["code"] == "duplicate_face"
    corrupt = labeler_api.post(
        url, {"image": photo(truncated_jpeg_bytes(), "x.jpg")}, format="multipart"
    )
    assert corrupt.status_code == 400 and error_of(corrupt)["code"] == "corrupt_image"
    missing = labeler_api.post(url, {}, format="multipart")
    assert missing.status_code == 400 and "image" in error_of(missing)["message"]
    large = labeler_api.post(
        url, {"image": photo(jpeg_bytes(640, 480), "big.jpg")}, format="multipart"
    )
    assert large.status_code == 503 and error_of(large)["code"] == "no_face_detector"
    bad_box = labeler_api.post(
        url, {"image": photo(orl(2, 5)), "box": "9,9,1,1"}, format="multipart"
    )
    assert bad_box.status_code == 400 and "box" in error_of(bad_box)["message"]
    two_with_box = labeler_api.post(
        url, {"image": [photo(orl(2, 5)), photo(orl(2, 6))], "box": "0,0,9,9"}, format="multipart"
    )
    assert two_with_box.status_code == 400 and "box" in error_of(two_with_box)["message"]
    assert Face.objects.count() == 1 and Image.objects.count() == 1 and not Job.objects.exists()


def test_delete_face(labeler_api, tiny_verifier, orl):
    bob = enrollment.create_subject("Bob")
    enrollment.enroll(bob, [services.read_image(orl(2), "2.pgm")])
    face = Face.objects.get()
    assert labeler_api.delete(f"/api/v1/faces/faces/{face.pk}/").status_code == 204
    assert not Face.objects.exists() and not Image.objects.exists()
    again = labeler_api.delete(f"/api/v1/faces/faces/{face.pk}/")
    assert again.status_code == 404 and error_of(again)["code"] == "not_found"


def test_reembed_endpoint_is_for_admins(admin_user, labeler_api, tiny_verifier, orl):
    from tests.conftest import make_tiny_verifier

    bob = enrollment.create_subject("Bob")
    enrollment.enroll(bob, [services.read_image(orl(2), "2.pgm")])
    assert labeler_api.post("/api/v1/faces/reembed/").status_code == 403
    admin = token_client(admin_user)
    nothing = admin.post("/api/v1/faces/reembed/")
    assert nothing.status_code == 200 and nothing.json()["job"] is None
    make_tiny_verifier(seed=5)
    started = admin.post("/api/v1/faces/reembed/")
    assert started.status_code == 202 and started.json()["job"]["kind"] == "reembed"
