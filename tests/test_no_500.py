"""Inputs that once answered 500 answer a 4xx JSON error instead."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "query",
    ["page=inf", "page=1e20", "page=nan", "size=inf", "page=true"],
)
def test_compreface_paging_numbers(labeler_api, query):
    response = labeler_api.get(f"/api/v1/recognition/faces?{query}")
    assert response.status_code == 400, response.content
    assert "must be" in response.content.decode()


@pytest.mark.parametrize("image_id", ["²", "١٢", "9" * 25])
def test_compreface_delete_of_a_strange_id(labeler_api, image_id):
    response = labeler_api.delete(f"/api/v1/recognition/faces/{image_id}")
    assert response.status_code == 404


def test_json_nested_too_deep(labeler_api):
    body = "[" * 100_000 + "]" * 100_000
    response = labeler_api.post("/api/v1/detect/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


@pytest.mark.parametrize("raw", ["²", "1" * 30, "-1", "0"])
def test_ids_in_queries_that_are_not_ids(labeler_api, client, labeler, dataset, raw):
    assert labeler_api.get(f"/api/v1/training/runs/?dataset={raw}").status_code == 200
    assert labeler_api.get(f"/api/v1/models/?dataset={raw}").status_code == 200
    client.force_login(labeler)
    assert client.get(f"/?dataset={raw}").status_code == 200


@pytest.mark.parametrize("name", ["Ann\x00", "Bob\x07"])
def test_control_characters_in_a_compreface_subject(labeler_api, name):
    created = labeler_api.post("/api/v1/recognition/subjects", {"subject": name}, format="json")
    assert created.status_code == 400 and "control characters" in created.json()["message"]
    looked_up = labeler_api.delete(f"/api/v1/recognition/subjects/{name}")
    assert looked_up.status_code == 400


def test_two_files_under_one_field_are_refused(labeler_api, dataset, tiny_detector):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.images import jpeg_bytes
    from webapp.images.models import Image

    files = [SimpleUploadedFile(f"{n}.jpg", jpeg_bytes(seed=n)) for n in (1, 2)]
    response = labeler_api.post(
        "/api/v1/images/", {"file": files, "dataset": dataset.pk}, format="multipart"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_files"
    assert not Image.objects.exists()
    detect = labeler_api.post(
        "/api/v1/detect/?wait=0",
        {"image": [SimpleUploadedFile(f"{n}.jpg", jpeg_bytes(seed=n)) for n in (1, 2)]},
        format="multipart",
    )
    assert detect.status_code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/api/v1/jobs/"), ("post", "/api/v1/detect/"), ("post", "/api/v1/training/runs/")],
)
def test_a_json_body_that_is_not_an_object(labeler_api, method, path):
    response = getattr(labeler_api, method)(path, "[null, null]", content_type="application/json")
    assert response.status_code == 400
    assert "must be a JSON object" in response.json()["error"]["message"]


def test_a_class_patch_with_a_list_body(labeler_api, dataset):
    from webapp.images.models import LabelClass

    cls = LabelClass.objects.create(dataset=dataset, name="RBC", color="#e6194b")
    response = labeler_api.patch(
        f"/api/v1/classes/{cls.pk}/", "[null, null]", content_type="application/json"
    )
    assert response.status_code == 400 and LabelClass.objects.get(pk=cls.pk).name == "RBC"


def test_answer_only_routes_refuse_wait_zero_before_anything(labeler_api, tiny_detector):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.images import jpeg_bytes
    from webapp.jobs.models import Job

    response = labeler_api.post(
        "/v1/vision/detection?wait=0",
        {"image": SimpleUploadedFile("a.jpg", jpeg_bytes())},
        format="multipart",
    )
    assert (
        response.status_code == 400 and "answers only with the result" in response.json()["error"]
    )
    assert not Job.objects.exists()
