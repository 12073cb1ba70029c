"""API conventions: versioned paths, one error body, pagination, filters, OpenAPI schema."""

from __future__ import annotations

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.images import jpeg_bytes
from webapp.images.models import Dataset

pytestmark = pytest.mark.django_db


def test_openapi_schema_lists_the_endpoints(labeler_api):
    response = labeler_api.get("/api/v1/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/images/", "/api/v1/jobs/{id}/cancel/", "/api/v1/datasets/"} <= set(
        schema["paths"]
    )


def test_docs_page_uses_bundled_assets(client, labeler):
    client.force_login(labeler)
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content and b"cdn.jsdelivr" not in response.content


def test_unknown_api_path_is_json_404(labeler_api):
    response = labeler_api.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_unknown_object_is_error_body(labeler_api):
    response = labeler_api.get("/api/v1/images/424242/")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_validation_error_body(labeler_api):
    response = labeler_api.post("/api/v1/jobs/", {"kind": "launch_rockets", "dataset": ""})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and "kind" in error["details"]


def test_malformed_json_is_a_clear_400(labeler_api):
    response = labeler_api.generic(
        "POST", "/api/v1/datasets/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_pagination_and_filters(labeler_api):
    web = Dataset.objects.create(name="web-set")
    for seed in range(3):
        labeler_api.post(
            "/api/v1/images/",
            {
                "file": SimpleUploadedFile(f"{seed}.jpg", jpeg_bytes(seed=seed)),
                "dataset": web.pk,
                "source": "web" if seed else "app",
            },
            format="multipart",
        )
    page = labeler_api.get("/api/v1/images/?page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    app_only = labeler_api.get("/api/v1/images/?source=app").json()
    assert [r["source"] for r in app_only["results"]] == ["app"]
    datasets = labeler_api.get("/api/v1/datasets/").json()["results"]
    assert {d["name"]: d["image_count"] for d in datasets}["web-set"] == 3


def test_bad_source_is_rejected(labeler_api):
    response = labeler_api.post(
        "/api/v1/images/",
        {
            "file": SimpleUploadedFile("a.jpg", jpeg_bytes()),
            "source": "Not A Slug!",
        },
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("source:")


def test_only_admins_delete_datasets(labeler_api, admin_user):
    from tests.conftest import token_client

    ds = Dataset.objects.create(name="precious")
    assert labeler_api.delete(f"/api/v1/datasets/{ds.pk}/").status_code == 403
    assert Dataset.objects.filter(pk=ds.pk).exists()
    assert token_client(admin_user).delete(f"/api/v1/datasets/{ds.pk}/").status_code == 204
